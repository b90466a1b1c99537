// The relay's hot path: the statements every sent message and receipt runs, on the concrete
// connection `Conn`. This file is included twice by `store.rs` (once with `Conn` =
// `SqliteConnection`, once with `PgConnection`), so the same code is compiled once for each
// database; the store's public functions dispatch to it with `hot_path!`.
//
// Why not through `DbConn`: diesel's `MultiConnection` writes every statement's SQL text and
// converts every bind value again on each execution, even when the statement is prepared and
// cached, which cost the group commit about a third of its time per message.

/// This user's membership row in `conversation`, if they are a member.
pub(super) fn member(conn: &mut Conn, user: UserId, conversation: ConversationId) -> StoreResult<Option<MemberRow>> {
    Ok(members::table
        .find((conversation, user))
        .select(MemberRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Every member of `conversation`.
pub(super) fn members_of(conn: &mut Conn, conversation: ConversationId) -> StoreResult<Vec<MemberRow>> {
    Ok(members::table
        .filter(members::conversation_id.eq(conversation))
        .select(MemberRow::as_select())
        .load(conn)?)
}

/// Every member of `conversation` but `user`.
pub(super) fn other_members(
    conn: &mut Conn,
    conversation: ConversationId,
    user: UserId,
) -> StoreResult<Vec<MemberRow>> {
    Ok(members::table
        .filter(members::conversation_id.eq(conversation))
        .filter(members::user_id.ne(user))
        .select(MemberRow::as_select())
        .load(conn)?)
}

/// One user's name.
pub(super) fn username(conn: &mut Conn, id: UserId) -> StoreResult<Option<String>> {
    Ok(users::table.find(id).select(users::username).get_result(conn).optional()?)
}

/// Whether `sender` wrote in `conversation` (not withheld) before message `before`.
pub(super) fn wrote_before(
    conn: &mut Conn,
    conversation: ConversationId,
    sender: UserId,
    before: MessageId,
) -> StoreResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        messages::table
            .filter(messages::sender_id.eq(sender))
            .filter(messages::id.lt(before))
            .filter(messages::conversation_id.eq(conversation))
            .filter(messages::withheld.eq(false)),
    ))
    .get_result(conn)?)
}

/// Whether `blocker` has blocked `blocked`.
pub(super) fn is_blocked(conn: &mut Conn, blocker: UserId, blocked: UserId) -> StoreResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(blocks::table.find((blocker, blocked)))).get_result(conn)?)
}

/// Sets a member's markers to at least `up_to` (the read marker only when `read`).
pub(super) fn raise_marker(conn: &mut Conn, m: &MemberRow, up_to: MessageId, read: bool) -> StoreResult<()> {
    hot::Markers {
        conversation: m.conversation_id.0,
        user: m.user_id.0,
        delivered: m.delivered_up_to.max(up_to).0,
        read: m.read_up_to.max(up_to).0,
        set_read: read,
    }
    .execute(conn)?;
    Ok(())
}

/// [`super::store_message`]'s work, inside the transaction or savepoint it opens.
pub(super) fn store_message(
    conn: &mut Conn,
    message: &NewMessage<'_>,
    quota: i64,
) -> StoreResult<Result<Stored, Refused>> {
    let NewMessage { sender, conversation, client_msg_id, envelope, blob_ids, now } = *message;
    if let Some((row, withheld)) = messages::table
        .filter(messages::sender_id.eq(sender))
        .filter(messages::client_msg_id.eq(client_msg_id))
        .select((MessageRow::as_select(), messages::withheld))
        .get_result(conn)
        .optional()?
    {
        // A resend is the same message to the same place; anything else reusing the id would
        // be acked as a message it is not.
        if row.conversation_id != conversation || row.envelope != envelope {
            return Ok(Err(Refused::IdReused));
        }
        return Ok(Ok(Stored { row, new: false, withheld }));
    }
    if !blob_ids.is_empty() {
        let owned: Vec<String> = blobs::table
            .filter(blobs::id.eq_any(blob_ids))
            .filter(blobs::owner_id.eq(sender))
            .select(blobs::id)
            .load(conn)?;
        if let Some(missing) = blob_ids.iter().find(|id| !owned.contains(id)) {
            return Ok(Err(Refused::Blob(missing.clone())));
        }
    }
    // A group's messages go to its log (store::mls), never here. (A direct conversation moved
    // to MLS still takes version 1 messages from clients that cannot do MLS yet.)
    let group: i64 = conversations::table
        .find(conversation)
        .filter(conversations::kind.eq("group"))
        .count()
        .get_result(conn)?;
    if group > 0 {
        return Ok(Err(Refused::Group));
    }
    let members = members_of(conn, conversation)?;
    // A direct conversation has exactly one other member: the recipient.
    let Some(recipient) = members.iter().find(|m| m.user_id != sender).map(|m| m.user_id) else {
        return Ok(Err(Refused::NoRecipient));
    };
    // One statement: whether the recipient deleted their account (the row stays, so their
    // peers' history names them, with an empty credential) and whether they blocked the sender.
    let (deleted, withheld): (bool, bool) = users::table
        .find(recipient)
        .select((users::auth_hash.eq(""), diesel::dsl::exists(blocks::table.find((recipient, sender)))))
        .get_result(conn)?;
    if deleted {
        return Ok(Err(Refused::RecipientDeleted));
    }
    let size = envelope.len() as i64;
    let charged = hot::ChargeQuota { user: sender.0, size, limit: quota - size }.execute(conn)?;
    if charged == 0 {
        return Ok(Err(Refused::Quota));
    }
    let row = diesel::insert_into(messages::table)
        .values((
            messages::conversation_id.eq(conversation),
            messages::sender_id.eq(sender),
            messages::recipient_id.eq(recipient),
            messages::client_msg_id.eq(client_msg_id),
            messages::envelope.eq(envelope),
            messages::created_at.eq(now),
            messages::withheld.eq(withheld),
        ))
        .returning(MessageRow::as_returning())
        .get_result(conn)?;
    hot::Touch { conversation: conversation.0, at: now }.execute(conn)?;
    // Reopen it for those who closed it (but a withheld message reopens nothing for the
    // recipient who blocked the sender). Only rows that change are written, and nothing is
    // when no one closed it, as is usual.
    if members.iter().any(|m| m.hidden && (!withheld || m.user_id == sender)) {
        let closed =
            members::table.filter(members::conversation_id.eq(conversation)).filter(members::hidden.eq(true));
        if withheld {
            diesel::update(closed.filter(members::user_id.eq(sender)))
                .set(members::hidden.eq(false))
                .execute(conn)?;
        } else {
            diesel::update(closed).set(members::hidden.eq(false)).execute(conn)?;
        }
    }
    if !blob_ids.is_empty() {
        let mut ids = blob_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let links: Vec<_> =
            ids.iter().map(|b| (message_blobs::message_id.eq(row.id), message_blobs::blob_id.eq(b))).collect();
        diesel::insert_into(message_blobs::table).values(&links).execute(conn)?;
        diesel::update(blobs::table.filter(blobs::id.eq_any(&ids))).set(blobs::attached.eq(true)).execute(conn)?;
    }
    Ok(Ok(Stored { row, new: true, withheld }))
}
