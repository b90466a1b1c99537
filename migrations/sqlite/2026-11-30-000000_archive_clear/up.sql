-- Clearing a conversation clears its history archive too (docs/PROTOCOL.md "Clear"): the
-- archived entries go, and this marker keeps a device that reads the log late from archiving
-- them again. A log position: entries at or below it are not archived for this member.
ALTER TABLE members ADD COLUMN archive_cleared_up_to BIGINT NOT NULL DEFAULT 0;
