package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations (in nanoseconds) in log-linear buckets, in
// the manner of HdrHistogram: exact below 256ns, then 128 buckets for each
// power of two, so that a value read back (its bucket's midpoint) is
// within 0.4% of what was recorded. It takes 36 KiB whatever the number of
// samples. Min, max, count and sum are exact. The zero value is not
// usable; use NewHistogram. A Histogram is not safe for concurrent use.
type Histogram struct {
	counts   []uint64
	total    uint64
	sum      float64 // nanoseconds; float so that long soaks cannot overflow
	min, max int64
}

const (
	subBits     = 7
	subCount    = 1 << subBits // buckets per power of two
	exactBelow  = 2 * subCount // values below this have a bucket each
	maxBitLen   = 42           // values up to 2^42ns (73 minutes)
	maxTracked  = 1<<maxBitLen - 1
	bucketCount = (maxBitLen-subBits-1)*subCount + exactBelow
)

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, bucketCount), min: math.MaxInt64}
}

func bucketOf(v int64) int {
	if v < exactBelow {
		return int(v)
	}
	if v > maxTracked {
		v = maxTracked
	}
	shift := bits.Len64(uint64(v)) - (subBits + 1)
	return shift*subCount + int(v>>shift)
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < exactBelow {
		return int64(i), int64(i)
	}
	shift := i/subCount - 1
	m := int64(i - shift*subCount)
	lo = m << shift
	return lo, lo + 1<<shift - 1
}

// Record adds one sample; negative durations count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	h.total++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.total }

// Max is the largest sample (0 when empty).
func (h *Histogram) Max() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.max)
}

// Min is the smallest sample (0 when empty).
func (h *Histogram) Min() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Mean is the average sample (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.total))
}

// Percentile returns the sample of nearest rank p (0 to 100): the smallest
// recorded value such that at least p% of the samples are at or below it,
// read as its bucket's midpoint and kept within [Min, Max]. Percentile(100)
// is Max exactly, Percentile(0) is Min.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	if p <= 0 {
		return time.Duration(h.min)
	}
	if p >= 100 {
		return time.Duration(h.max)
	}
	// Nearest rank, guarded against 99.9*1000 = 999.0000000000001.
	rank := uint64(math.Ceil(p/100*float64(h.total) - 1e-9))
	if rank < 1 {
		rank = 1
	}
	var cum uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		cum += c
		if cum >= rank {
			lo, hi := bucketBounds(i)
			v := lo + (hi-lo)/2
			v = max(v, h.min)
			v = min(v, h.max)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

// CountAbove is the number of samples at or above d (exact at bucket
// boundaries, otherwise within one bucket).
func (h *Histogram) CountAbove(d time.Duration) uint64 {
	var n uint64
	for i := bucketOf(max(int64(d), 0)); i < len(h.counts); i++ {
		n += h.counts[i]
	}
	return n
}

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Since returns the samples recorded in h after the snapshot earlier (a
// copy of h taken before): progress lines use it for the last interval.
// Its min and max are those of the buckets concerned, not exact.
func (h *Histogram) Since(earlier *Histogram) *Histogram {
	d := NewHistogram()
	first, last := -1, -1
	for i := range h.counts {
		c := h.counts[i] - earlier.counts[i]
		d.counts[i] = c
		if c > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	d.total = h.total - earlier.total
	d.sum = h.sum - earlier.sum
	if d.total > 0 {
		d.min, _ = bucketBounds(first)
		_, d.max = bucketBounds(last)
		d.max = min(d.max, h.max)
		d.min = max(d.min, h.min)
	}
	return d
}

// Clone returns a copy of h.
func (h *Histogram) Clone() *Histogram {
	c := *h
	c.counts = append([]uint64(nil), h.counts...)
	return &c
}

// Summary are the figures reported for a latency distribution, in
// milliseconds.
type Summary struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// Summary returns the reported figures of h.
func (h *Histogram) Summary() Summary {
	return Summary{
		Count: h.total,
		Min:   ms(h.Min()),
		Mean:  ms(h.Mean()),
		P50:   ms(h.Percentile(50)),
		P90:   ms(h.Percentile(90)),
		P99:   ms(h.Percentile(99)),
		P999:  ms(h.Percentile(99.9)),
		Max:   ms(h.Max()),
	}
}
