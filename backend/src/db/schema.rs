// @generated automatically by Diesel CLI.

diesel::table! {
    account_tokens (token_hash) {
        token_hash -> Text,
        user_id -> BigInt,
        purpose -> Text,
        new_email -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    cluster_nodes (node) {
        node -> Text,
        addr -> Text,
        heartbeat_at -> BigInt,
        status -> Text,
    }
}

diesel::table! {
    pets (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        species -> Text,
        age -> Integer,
        hunger -> Integer,
        is_alive -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    sessions (token_hash) {
        token_hash -> Text,
        user_id -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    shard_leases (shard) {
        shard -> BigInt,
        node -> Text,
        epoch -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        email -> Text,
        password_hash -> Text,
        available_treats -> Integer,
        created_at -> BigInt,
    }
}

diesel::joinable!(account_tokens -> users (user_id));
diesel::joinable!(pets -> users (user_id));
diesel::joinable!(sessions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    account_tokens,
    cluster_nodes,
    pets,
    sessions,
    shard_leases,
    users,
);
