ALTER TABLE pets RESET (fillfactor);
