package main

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// noise is what a real pod does that no fault switch controls and that is the same on both
// versions: it stalls for a moment now and then (GC, CPU throttling, a noisy neighbour), so
// its slow requests and errors arrive in lumps; it starts cold (an empty cache, code not yet
// hot); and it fills its connection pool lazily, the first dials sometimes refused. A judge
// must not roll back a good canary for any of it.
type noise struct {
	noiseConfig
	phase   time.Duration // where in stallEvery this pod stalls: its own, random
	started time.Time
	dialled atomic.Int64
}

// noiseConfig is the noise as the flags give it.
type noiseConfig struct {
	stallEvery time.Duration // 0: the pod never stalls
	stallFor   time.Duration
	stallFail  float64       // share of the requests caught in a stall answered 500
	coldFor    time.Duration // 0: warm from the start
	poolSize   int64         // 0: no pool to fill
	refused    float64       // share of the pool's dials refused once before they succeed
}

// validate refuses values no pod could have, saying which flag and what to use.
func (c noiseConfig) validate() error {
	switch {
	case c.stallEvery < 0 || c.stallFor < 0 || (c.stallEvery > 0 && c.stallFor >= c.stallEvery):
		return fmt.Errorf("-stall-every %v, -stall-for %v: use durations >= 0 with the stall shorter than its period", c.stallEvery, c.stallFor)
	case !(c.stallFail >= 0 && c.stallFail <= 1) || !(c.refused >= 0 && c.refused <= 1):
		return fmt.Errorf("-stall-fail %v, -pool-refused %v: use shares from 0 to 1", c.stallFail, c.refused)
	case c.coldFor < 0 || c.poolSize < 0:
		return fmt.Errorf("-cold-for %v, -pool-size %d: use values >= 0", c.coldFor, c.poolSize)
	}
	return nil
}

// begin is the pod's noise from its start at now, stalling at a random phase of its own.
func (c noiseConfig) begin(now time.Time) *noise {
	n := &noise{noiseConfig: c, started: now}
	if c.stallEvery > 0 {
		n.phase = time.Duration(rand.Int64N(int64(c.stallEvery)))
	}
	return n
}

// stalledUntil is the end of the stall a request arriving at now waits for, or the zero time.
func (n *noise) stalledUntil(now time.Time) time.Time {
	if n.stallEvery <= 0 || n.stallFor <= 0 {
		return time.Time{}
	}
	into := (now.Sub(n.started) + n.stallEvery - n.phase) % n.stallEvery
	if into >= n.stallFor {
		return time.Time{}
	}
	return now.Add(n.stallFor - into)
}

// cold reports whether the pod is still warming up at now.
func (n *noise) cold(now time.Time) bool {
	return n.coldFor > 0 && now.Sub(n.started) < n.coldFor
}

// dial reports whether this request opens one of the pool's connections, and whether that
// dial was refused first.
func (n *noise) dial(chance float64) (opened, refused bool) {
	if n.poolSize <= 0 || n.dialled.Load() >= n.poolSize {
		return false, false
	}
	if n.dialled.Add(1) > n.poolSize {
		return false, false
	}
	return true, chance < n.refused
}

// apply does the noise's part of a request: waits out a stall, works twice as long while
// cold, logs a refused dial; true when the stall failed the request.
func (s *service) applyNoise(now time.Time) (failed, cold bool) {
	n := s.noise
	if n == nil {
		return false, false
	}
	if until := n.stalledUntil(now); !until.IsZero() {
		time.Sleep(until.Sub(now))
		failed = rand.Float64() < n.stallFail
	}
	if _, refused := n.dial(rand.Float64()); refused {
		s.log.Error("dial tcp 10.0.0.7:5432: connect: connection refused", "pool", "retrying")
	}
	return failed, n.cold(now)
}
