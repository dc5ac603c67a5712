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
// integers little-endian. A process reads only the bytes of a segment that
// it synced, or that its recovery checked: a write that failed is cut back
// to the last synced size, and when even that fails the bytes it left past
// that size are never read by this process. The next Open's recovery
// treats them as any other bytes: whole frames are kept (a record whose
// Append failed may then be sent, which is harmless), the rest is set
// aside as below.
//
// A frame cut short by a crash, or one that does not decode (its checksum
// does not match, its length runs past the file), ends the segment's
// records: the frames before it are kept and sent, and the bytes from it to
// the end of the segment, which may hold further frames that can no longer
// be found, are set aside. Recovery does this at Open for every segment;
// Replay does it for a sealed segment the disk damaged after it was
// written, so that a damaged segment never stops the records before the
// damage, or the segments after it, from being sent. Setting aside copies
// those bytes to a file beside the segment, named like it with ".damaged"
// added (".damaged.1" and so on if that name is taken), for inspection,
// then cuts the segment back to its good frames. It is logged once, with
// the records kept, the bytes set aside and, when Replay knows it, the
// records lost, and counted in Stats.Damaged. A tail torn by a crash held
// no acknowledged record (Append answers only after the fsync); damage
// found by Replay, or in the middle of a segment, means acknowledged
// records were lost. The spool never reads or removes ".damaged" files and
// does not count them in its bound: an operator removes them once
// inspected. A file named like a segment that does not start with the
// header is renamed with ".invalid" added and left alone.
package spool
