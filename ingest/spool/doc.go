// Package spool is the ingestor's local write-ahead log of records that
// JetStream did not acknowledge in time.
//
// A caller is answered only once its record is durable somewhere: in the
// stream, or here. Appends are group-committed: whatever arrives while one
// fsync runs is written and synced together by the next, so a burst of
// failing publishes costs one fsync per burst, not one per call. The spool is
// bounded in bytes; past the bound an append fails with ErrFull.
//
// Records live in segment files named by a sequence number, in order. Replay
// seals the segment being written, sends the records of the oldest segment in
// chunks and removes a segment once every record in it was sent. A restart
// finds the segments still on disk and replays them from their start: a
// record may be sent twice, never lost. Senders publish with the record's
// original id as Nats-Msg-Id, so JetStream's duplicate window (and, past it,
// ClickHouse's replacing table) absorbs the repeats.
//
// On disk a segment is an 8-byte header followed by frames:
//
//	uint32 body length | uint32 CRC-32C of body | body
//	body = uvarint len(subject) | subject | uvarint len(id) | id | data
//
// integers little-endian. A frame cut short by a crash, or one whose checksum
// does not match, ends the segment: recovery truncates the file there.
package spool
