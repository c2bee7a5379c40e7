package main

import (
	"math"
	"math/rand/v2"
	"time"
)

// The work a request does is simulated: no database, cache or upstream exists, but each
// outcome is drawn from the faults in force and recorded in the same metrics real code would.

// outboundHost is the upstream the simulated outbound call goes to.
const outboundHost = "inventory.internal"

// dbQuery sleeps as long as a quick select would take, plus the slow_db_ms fault.
func (s *service) dbQuery(f Faults) {
	elapsed := time.Duration(500+rand.IntN(1500))*time.Microsecond + millis(f.SlowDBMS)
	time.Sleep(elapsed)
	s.telemetry.dbQueryDuration.observe(elapsed.Seconds(), "select")
}

// cacheLookup hits or misses at the cache_miss_rate fault's rate.
func (s *service) cacheLookup(f Faults) string {
	result := "hit"
	if rand.Float64() < f.CacheMissRate {
		result = "miss"
	}
	s.telemetry.cacheRequests.inc(result)
	return result
}

// outboundCall succeeds with 200, or fails at the outbound_error_rate fault's rate: half as
// an upstream 503, half as a connection error.
func (s *service) outboundCall(f Faults) string {
	time.Sleep(time.Duration(200+rand.IntN(800)) * time.Microsecond)
	code := "200"
	if rand.Float64() < f.OutboundErrorRate {
		code = "503"
		if rand.IntN(2) == 0 {
			code = "error"
		}
	}
	s.telemetry.clientRequests.inc(outboundHost, code)
	return code
}

// work sleeps as long as the request's own computation takes: lognormal around workMS, the
// shape real service latencies have (a long right tail). Zero workMS: no extra work.
func work(workMS float64) {
	if workMS <= 0 {
		return
	}
	time.Sleep(millis(workMS * math.Exp(0.5*rand.NormFloat64())))
}

// garbageSink keeps the compiler from optimising allocateGarbage away.
var garbageSink []byte

// allocateGarbage allocates kb KiB that die at once: the heap churn a serialisation change
// causes, which makes the collector run more often.
func allocateGarbage(kb int) {
	for range kb / 64 {
		buf := make([]byte, 64<<10)
		buf[0] = 1
		garbageSink = buf
	}
	if rest := kb % 64; rest > 0 {
		garbageSink = make([]byte, rest<<10)
	}
	garbageSink = nil
}

// leaked is never closed: goroutines waiting on it are parked for the life of the process.
var leaked = make(chan struct{})

func leakGoroutines(n int) {
	for range n {
		go func() { <-leaked }()
	}
}

// burnCPU busy-loops for d of wall time on one core.
func burnCPU(d time.Duration) {
	deadline := time.Now().Add(d)
	x := uint64(1)
	for time.Now().Before(deadline) {
		for range 1000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	cpuSink = x
}

var cpuSink uint64

func millis(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }
