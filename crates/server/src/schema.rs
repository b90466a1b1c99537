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
        signing_key -> Nullable<Binary>,
        disabled_at -> Nullable<BigInt>,
        is_admin -> Bool,
    }
}

diesel::table! {
    invites (id) {
        id -> BigInt,
        code_hash -> Binary,
        note -> Text,
        max_uses -> BigInt,
        uses -> BigInt,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        created_by -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    deleted_users (user_id) {
        user_id -> BigInt,
        deleted_at -> BigInt,
        name_released_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    kicks (id) {
        id -> BigInt,
        user_id -> BigInt,
        session_id -> Text,
        reason -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    relay_status (node) {
        node -> Text,
        connections -> BigInt,
        updated_at -> BigInt,
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
        kind -> Text,
        user_lo -> Nullable<BigInt>,
        user_hi -> Nullable<BigInt>,
        created_at -> BigInt,
        last_activity -> BigInt,
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
        admin -> Bool,
        archive_cleared_up_to -> BigInt,
        log_delivered_up_to -> BigInt,
        log_read_up_to -> BigInt,
    }
}

diesel::table! {
    log_withheld (user_id, seq) {
        conversation_id -> BigInt,
        seq -> BigInt,
        user_id -> BigInt,
    }
}

diesel::table! {
    log_messages (conversation_id, seq) {
        conversation_id -> BigInt,
        seq -> BigInt,
        sender_id -> BigInt,
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

diesel::table! {
    devices (id) {
        id -> Binary,
        user_id -> BigInt,
        certificate -> Binary,
        created_at -> BigInt,
        last_seen -> BigInt,
        revoked_at -> Nullable<BigInt>,
        log_cursor -> BigInt,
    }
}

diesel::table! {
    key_packages (id) {
        id -> BigInt,
        device_id -> Binary,
        data -> Binary,
        last_resort -> Bool,
    }
}

diesel::table! {
    mls_groups (conversation_id) {
        conversation_id -> BigInt,
        group_id -> Binary,
        epoch -> BigInt,
        group_info -> Binary,
    }
}

diesel::table! {
    group_log (seq) {
        seq -> BigInt,
        conversation_id -> BigInt,
        sender_id -> BigInt,
        sender_device -> Binary,
        epoch -> BigInt,
        content_type -> Integer,
        client_msg_id -> Binary,
        data -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    welcomes (id) {
        id -> BigInt,
        device_id -> Binary,
        conversation_id -> BigInt,
        log_seq -> BigInt,
        data -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    archive (user_id, conversation_id, seq) {
        user_id -> BigInt,
        conversation_id -> BigInt,
        seq -> BigInt,
        sender -> Text,
        sent_ms -> BigInt,
        entry -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    past_members (conversation_id, user_id) {
        conversation_id -> BigInt,
        user_id -> BigInt,
        until_seq -> BigInt,
    }
}

diesel::table! {
    group_blobs (blob_id, conversation_id, seq) {
        conversation_id -> BigInt,
        seq -> BigInt,
        blob_id -> Text,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(devices -> users (user_id));
diesel::joinable!(key_packages -> devices (device_id));
diesel::joinable!(mls_groups -> conversations (conversation_id));
diesel::joinable!(group_log -> conversations (conversation_id));
diesel::joinable!(log_messages -> conversations (conversation_id));
diesel::joinable!(welcomes -> devices (device_id));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(members -> conversations (conversation_id));
diesel::joinable!(message_blobs -> messages (message_id));
diesel::joinable!(message_blobs -> blobs (blob_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    invites,
    deleted_users,
    kicks,
    relay_status,
    sessions,
    conversations,
    members,
    messages,
    blobs,
    message_blobs,
    blocks,
    devices,
    key_packages,
    mls_groups,
    group_log,
    welcomes,
    archive,
    past_members,
    group_blobs,
    log_messages,
    log_withheld
);
