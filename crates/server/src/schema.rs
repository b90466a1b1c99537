//! Diesel schema, matching `migrations/`.

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        auth_hash -> Text,
        kdf_salt -> Binary,
        kdf_m_kib -> Integer,
        kdf_t -> Integer,
        kdf_p -> Integer,
        identity_key -> Binary,
        key_backup -> Binary,
        key_backup_version -> BigInt,
        created_at -> BigInt,
        last_seen -> Nullable<BigInt>,
        message_bytes -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    conversations (id) {
        id -> BigInt,
        user_lo -> BigInt,
        user_hi -> BigInt,
        created_at -> BigInt,
        last_activity -> BigInt,
        kind -> Text,
    }
}

diesel::table! {
    members (conversation_id, user_id) {
        conversation_id -> BigInt,
        user_id -> BigInt,
        cleared_up_to -> BigInt,
        read_up_to -> BigInt,
        delivered_up_to -> BigInt,
        pinned -> Bool,
        hidden -> Bool,
    }
}

diesel::table! {
    messages (id) {
        id -> BigInt,
        conversation_id -> BigInt,
        sender_id -> BigInt,
        recipient_id -> BigInt,
        client_msg_id -> Binary,
        envelope -> Binary,
        created_at -> BigInt,
        withheld -> Bool,
    }
}

diesel::table! {
    blocks (user_id, blocked_id) {
        user_id -> BigInt,
        blocked_id -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    blobs (id) {
        id -> Text,
        owner_id -> BigInt,
        size -> BigInt,
        created_at -> BigInt,
        attached -> Bool,
    }
}

diesel::table! {
    message_blobs (message_id, blob_id) {
        message_id -> BigInt,
        blob_id -> Text,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(members -> conversations (conversation_id));
diesel::joinable!(message_blobs -> messages (message_id));
diesel::joinable!(message_blobs -> blobs (blob_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    conversations,
    members,
    messages,
    blobs,
    message_blobs,
    blocks
);
