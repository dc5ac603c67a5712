package archiver

import (
	"context"
	"sync"
	"time"
)

// inserts stores batches on up to Config.Inserts goroutines at once, each
// insert on a connection of its own from the pool, while the caller reads
// and parses the next batch. A ClickHouse 18.16 insert works on one server
// core: one insert at a time left the server's other core and the
// archiver's reading idle in turn. On the 2-core benchmark machine two
// inserts replayed realistic rows (where the server's CPU is the limit)
// 10-25% faster than one; the benchmark's own small rows, where the
// archiver's CPU is the limit, no faster (see TestArchiveThroughput).
//
// Batches may be stored out of order; nothing depends on their order
// (call_events collapses copies through FINAL, and every message is
// acknowledged on its own once its batch is stored).
type inserts struct {
	work chan *batch
	wg   sync.WaitGroup
}

// startInserts starts n goroutines that call store for each batch put;
// they end when ctx ends or close is called, after the batch in hand.
func startInserts(ctx context.Context, n int, store func(context.Context, *batch)) *inserts {
	in := &inserts{work: make(chan *batch)}
	in.wg.Add(n)
	for range n {
		go func() {
			defer in.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case b, ok := <-in.work:
					if !ok {
						return
					}
					store(ctx, b)
				}
			}
		}()
	}
	return in
}

// put hands b to the first free insert, waiting until there is one or ctx
// ends (false: b was not taken). While it waits, b's messages are kept from
// being redelivered when ackWait > 0 (see batch.keepAlive).
func (in *inserts) put(ctx context.Context, b *batch, ackWait time.Duration) bool {
	var tick <-chan time.Time
	if ackWait > 0 {
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case in.work <- b:
			return true
		case <-ctx.Done():
			return false
		case <-tick:
			b.keepAlive(ackWait)
		}
	}
}

// close waits for the batches taken to be stored (or abandoned when the
// context given to startInserts ends).
func (in *inserts) close() {
	close(in.work)
	in.wg.Wait()
}
