DROP TABLE pets;
DROP TABLE sessions;
DROP TABLE users;
