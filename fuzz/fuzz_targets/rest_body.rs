//! Every REST body the relay reads, every query string and path segment it parses, and every
//! response body a client reads. The first byte picks which.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroom_fuzz::{json_body, query, request};
use sealroom_protocol::*;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    match which % 48 {
        // Requests: what the relay decodes.
        0 => request::<PreloginRequest>(body),
        1 => request::<RegisterRequest>(body),
        2 => request::<LoginRequest>(body),
        3 => request::<ChangePasswordRequest>(body),
        4 => request::<UpdateKeyBackupRequest>(body),
        5 => request::<OpenDirectRequest>(body),
        6 => request::<MarkReadRequest>(body),
        7 => request::<ClearRequest>(body),
        8 => request::<ConversationFlags>(body),
        9 => query::<HistoryQuery>(body),
        10 => {
            // Path segments: a username, a blob id, a conversation id, a device id.
            let Ok(text) = std::str::from_utf8(body) else { return };
            if let Ok(name) = Username::parse(text) {
                assert_eq!(Username::parse(name.as_str()).ok(), Some(name));
            }
            if let Ok(id) = BlobId::parse(text) {
                assert_eq!(id.as_str(), text);
            }
            let _ = text.parse::<i64>().map(ConversationId);
            if let Ok(device) = text.parse::<DeviceId>() {
                assert_eq!(device.to_string(), text);
            }
        }
        // Responses: what a client decodes from a relay it does not trust.
        11 => json_body::<PreloginResponse>(body),
        12 => json_body::<SessionResponse>(body),
        13 => json_body::<Me>(body),
        14 => json_body::<KeyBackupVersion>(body),
        15 => json_body::<UserInfo>(body),
        16 => json_body::<UserSearchResponse>(body),
        17 => json_body::<ConversationsResponse>(body),
        18 => json_body::<HistoryResponse>(body),
        19 => json_body::<BlockList>(body),
        20 => json_body::<Health>(body),
        21 => json_body::<UploadResponse>(body),
        22 => json_body::<StorageInfo>(body),
        23 => json_body::<ApiError>(body),
        24 => json_body::<ConversationSummary>(body),
        25 => json_body::<MessageOut>(body),
        // Groups (version 2): requests, the log's query, responses.
        26 => request::<PublishSigningKeyRequest>(body),
        27 => request::<RegisterDeviceRequest>(body),
        28 => request::<UploadKeyPackagesRequest>(body),
        29 => request::<ClaimKeyPackagesRequest>(body),
        30 => request::<CreateGroupRequest>(body),
        31 => request::<AppendRequest>(body),
        32 => request::<WelcomesTakenRequest>(body),
        33 => query::<GroupLogQuery>(body),
        34 => json_body::<DeviceList>(body),
        35 => json_body::<ClaimedKeyPackages>(body),
        36 => json_body::<GroupState>(body),
        37 => json_body::<GroupLogResponse>(body),
        38 => json_body::<WelcomeList>(body),
        // The history archive: the upload, the page's query, responses.
        39 => request::<ArchiveUpload>(body),
        40 => query::<ArchiveQuery>(body),
        41 => json_body::<ArchivePage>(body),
        42 => json_body::<ArchiveList>(body),
        // Running a relay: the invite request, responses.
        43 => request::<CreateInviteRequest>(body),
        44 => json_body::<ServerInfo>(body),
        45 => json_body::<CreatedInvite>(body),
        46 => json_body::<InviteList>(body),
        _ => request::<DeleteAccountRequest>(body),
    }
});
