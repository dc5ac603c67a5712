package bench

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func histOf(vals ...time.Duration) *Histogram {
	h := NewHistogram()
	for _, v := range vals {
		h.Record(v)
	}
	return h
}

func seq(from, to, step time.Duration) []time.Duration {
	var out []time.Duration
	for v := from; v <= to; v += step {
		out = append(out, v)
	}
	return out
}

func TestPercentiles(t *testing.T) {
	var skewed []time.Duration
	for range 990 {
		skewed = append(skewed, time.Millisecond)
	}
	for range 10 {
		skewed = append(skewed, 300*time.Millisecond)
	}
	tests := []struct {
		name string
		vals []time.Duration
		p    float64
		want time.Duration
		tol  float64 // relative
	}{
		{"empty", nil, 99, 0, 0},
		{"one sample is every percentile", []time.Duration{1234567}, 50, 1234567, 0},
		{"one sample p0", []time.Duration{1234567}, 0, 1234567, 0},
		{"one sample p99.9", []time.Duration{1234567}, 99.9, 1234567, 0},
		// Below 256ns every value has its own bucket: exact nearest rank.
		{"exact p50 of 1..100", seq(1, 100, 1), 50, 50, 0},
		{"exact p90 of 1..100", seq(1, 100, 1), 90, 90, 0},
		{"exact p99 of 1..100", seq(1, 100, 1), 99, 99, 0},
		{"exact p99.9 of 1..100", seq(1, 100, 1), 99.9, 100, 0},
		{"exact p0 of 1..100", seq(1, 100, 1), 0, 1, 0},
		{"exact p100 of 1..100", seq(1, 100, 1), 100, 100, 0},
		{"p1 of 1..100 is the first", seq(1, 100, 1), 1, 1, 0},
		{"p1.5 of 1..100 rounds the rank up", seq(1, 100, 1), 1.5, 2, 0},
		// 1..1000 µs: within the histogram's 0.4%.
		{"p50 of 1..1000us", seq(time.Microsecond, time.Millisecond, time.Microsecond), 50, 500 * time.Microsecond, 0.004},
		{"p90 of 1..1000us", seq(time.Microsecond, time.Millisecond, time.Microsecond), 90, 900 * time.Microsecond, 0.004},
		{"p99 of 1..1000us", seq(time.Microsecond, time.Millisecond, time.Microsecond), 99, 990 * time.Microsecond, 0.004},
		{"p99.9 of 1..1000us (rank 999, not 1000)", seq(time.Microsecond, time.Millisecond, time.Microsecond), 99.9, 999 * time.Microsecond, 0.004},
		{"max of 1..1000us is exact", seq(time.Microsecond, time.Millisecond, time.Microsecond), 100, time.Millisecond, 0},
		// 1% slow: p99 is still fast (rank 990), p99.9 is slow.
		{"skewed p99", skewed, 99, time.Millisecond, 0.004},
		{"skewed p99.9", skewed, 99.9, 300 * time.Millisecond, 0.004},
		{"skewed p50", skewed, 50, time.Millisecond, 0.004},
		{"negative counts as zero", []time.Duration{-5}, 50, 0, 0},
		{"beyond the range is kept as max", []time.Duration{2 * time.Hour}, 100, 2 * time.Hour, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := histOf(tt.vals...).Percentile(tt.p)
			if d := math.Abs(float64(got - tt.want)); d > tt.tol*float64(tt.want) {
				t.Errorf("p%v = %v, want %v (tolerance %.1f%%)", tt.p, got, tt.want, tt.tol*100)
			}
		})
	}
}

// TestBucketError: every value lies in its bucket, and a bucket is at most
// 1/128 of its lower bound wide, so the midpoint is within 0.4%.
func TestBucketError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		v := int64(r.Float64() * math.Pow(2, r.Float64()*41))
		i := bucketOf(v)
		lo, hi := bucketBounds(i)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d [%d, %d]", v, i, lo, hi)
		}
		if lo >= exactBelow && float64(hi-lo+1)/float64(lo) > 1.0/128 {
			t.Fatalf("bucket %d [%d, %d] wider than 1/128", i, lo, hi)
		}
		if i < 0 || i >= bucketCount {
			t.Fatalf("bucket %d out of range for %d", i, v)
		}
	}
	// Buckets are contiguous.
	for i := 1; i < bucketCount; i++ {
		_, prevHi := bucketBounds(i - 1)
		lo, _ := bucketBounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, prevHi)
		}
	}
}

func TestHistogramMergeAndSince(t *testing.T) {
	a := histOf(seq(time.Microsecond, 500*time.Microsecond, time.Microsecond)...)
	b := histOf(seq(501*time.Microsecond, time.Millisecond, time.Microsecond)...)
	all := histOf(seq(time.Microsecond, time.Millisecond, time.Microsecond)...)
	m := a.Clone()
	m.Merge(b)
	for _, p := range []float64{0, 50, 90, 99, 99.9, 100} {
		if m.Percentile(p) != all.Percentile(p) {
			t.Errorf("merged p%v = %v, want %v", p, m.Percentile(p), all.Percentile(p))
		}
	}
	if m.Count() != 1000 || m.Min() != time.Microsecond || m.Max() != time.Millisecond {
		t.Errorf("merged count %d min %v max %v", m.Count(), m.Min(), m.Max())
	}
	if mean := m.Mean(); mean < 500*time.Microsecond || mean > 501*time.Microsecond {
		t.Errorf("mean %v, want 500.5us", mean)
	}
	// The interval after a snapshot holds only the later samples.
	iv := m.Since(a)
	if iv.Count() != 500 {
		t.Fatalf("interval count %d, want 500", iv.Count())
	}
	if got := iv.Percentile(50); math.Abs(float64(got-750*time.Microsecond)) > 0.004*float64(750*time.Microsecond) {
		t.Errorf("interval p50 %v, want ~750us", got)
	}
	if iv.Min() < 495*time.Microsecond {
		t.Errorf("interval min %v includes earlier samples", iv.Min())
	}
	// Within one bucket (4us wide here) of the 101 samples >= 900us.
	if n := all.CountAbove(900 * time.Microsecond); n < 101 || n > 105 {
		t.Errorf("CountAbove(900us) = %d, want 101 to 105", n)
	}
}

func TestSummaryInMilliseconds(t *testing.T) {
	s := histOf(2*time.Millisecond, 4*time.Millisecond).Summary()
	if s.Count != 2 || s.Min != 2 || s.Max != 4 || s.Mean != 3 {
		t.Errorf("summary %+v", s)
	}
}
