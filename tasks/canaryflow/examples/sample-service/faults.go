package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Faults are the misbehaviours a release demo switches on, at start or at run time.
type Faults struct {
	ErrorRate         float64 `json:"error_rate"`          // share of user requests answered 500
	LatencyMS         float64 `json:"latency_ms"`          // extra latency...
	LatencyShare      float64 `json:"latency_share"`       // ...on this share of user requests
	GoroutineLeak     int     `json:"goroutine_leak"`      // goroutines parked forever per request
	CPUBurnMS         float64 `json:"cpu_burn"`            // busy-loop milliseconds per request
	SlowDBMS          float64 `json:"slow_db_ms"`          // added to every simulated DB query
	OutboundErrorRate float64 `json:"outbound_error_rate"` // share of outbound calls failing
	CacheMissRate     float64 `json:"cache_miss_rate"`     // share of cache lookups missing
	LatencyFactor     float64 `json:"latency_factor"`      // every request takes this many times as long (1: as usual)
	GCPressureKB      int     `json:"gc_pressure_kb"`      // short-lived garbage allocated per request, in KiB
	LogErrorRate      float64 `json:"log_error_rate"`      // share of requests logging an error yet answering 200
	Unhealthy         bool    `json:"unhealthy"`           // /healthz answers 503
	FlagOnOnly        bool    `json:"flag_on_only"`        // errors and latency hit only variant "on"
}

// maxGoroutineLeak bounds the leak per request so a typo cannot exhaust the machine at once.
const maxGoroutineLeak = 1000

// maxGCPressureKB bounds the garbage per request (64 MiB) for the same reason.
const maxGCPressureKB = 64 << 10

// maxLatencyFactor bounds how much slower a request may be made.
const maxLatencyFactor = 100

// healthyFaults is the service's normal behaviour: a warm cache that misses now and then.
func healthyFaults() Faults { return Faults{LatencyShare: 1, CacheMissRate: 0.1, LatencyFactor: 1} }

func (f Faults) validate() error {
	for name, rate := range map[string]float64{
		"error_rate": f.ErrorRate, "latency_share": f.LatencyShare,
		"outbound_error_rate": f.OutboundErrorRate, "cache_miss_rate": f.CacheMissRate,
		"log_error_rate": f.LogErrorRate,
	} {
		if rate < 0 || rate > 1 {
			return fmt.Errorf("%s: %v is not a share; use a number from 0 to 1", name, rate)
		}
	}
	for name, ms := range map[string]float64{
		"latency_ms": f.LatencyMS, "cpu_burn": f.CPUBurnMS, "slow_db_ms": f.SlowDBMS,
	} {
		if ms < 0 {
			return fmt.Errorf("%s: %v is negative; use milliseconds >= 0", name, ms)
		}
	}
	if f.GoroutineLeak < 0 || f.GoroutineLeak > maxGoroutineLeak {
		return fmt.Errorf("goroutine_leak: %d is out of range; use 0 to %d", f.GoroutineLeak, maxGoroutineLeak)
	}
	if f.GCPressureKB < 0 || f.GCPressureKB > maxGCPressureKB {
		return fmt.Errorf("gc_pressure_kb: %d is out of range; use 0 to %d", f.GCPressureKB, maxGCPressureKB)
	}
	if !(f.LatencyFactor >= 1 && f.LatencyFactor <= maxLatencyFactor) { // also refuses NaN
		return fmt.Errorf("latency_factor: %v is out of range; use 1 (as usual) to %d", f.LatencyFactor, maxLatencyFactor)
	}
	return nil
}

// appliesTo says whether the error and latency faults hit a request served with `variant`.
func (f Faults) appliesTo(variant string) bool { return !f.FlagOnOnly || variant == "on" }

// faultSwitch holds the faults in force and, optionally, faults scheduled to take over later.
// A due change is applied when it is next read, and `since` is the moment it was due: the
// moment from which every request saw it.
type faultSwitch struct {
	mu      sync.Mutex
	now     func() time.Time
	current Faults
	since   time.Time
	pending *scheduledFaults
}

type scheduledFaults struct {
	faults Faults
	at     time.Time
}

// newFaultSwitch starts with `start` in force, or healthy until `after` has passed.
func newFaultSwitch(start Faults, after time.Duration, now func() time.Time) *faultSwitch {
	s := &faultSwitch{now: now, current: start, since: now()}
	if after > 0 {
		s.current = healthyFaults()
		s.pending = &scheduledFaults{faults: start, at: s.since.Add(after)}
	}
	return s
}

// Current returns the faults in force and since when.
func (s *faultSwitch) Current() (Faults, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyDue()
	return s.current, s.since
}

func (s *faultSwitch) applyDue() {
	if s.pending != nil && !s.now().Before(s.pending.at) {
		s.current, s.since, s.pending = s.pending.faults, s.pending.at, nil
	}
}

// faultPatch is a PUT /admin/faults body: fields merged over the faults in force, and an
// optional delay in seconds before they take effect.
type faultPatch struct {
	Faults
	After float64 `json:"after"`
}

// Patch merges a JSON body over the faults in force; it replaces any pending change.
func (s *faultSwitch) Patch(body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyDue()
	patch := faultPatch{Faults: s.current}
	decoder := json.NewDecoder(bytes.NewReader(body))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&patch); err != nil {
		return fmt.Errorf("faults body: %v", err)
	}
	if patch.After < 0 {
		return fmt.Errorf("after: %v is negative; use seconds >= 0", patch.After)
	}
	if err := patch.Faults.validate(); err != nil {
		return err
	}
	now := s.now()
	s.pending = nil
	if patch.After > 0 {
		s.pending = &scheduledFaults{faults: patch.Faults, at: now.Add(seconds(patch.After))}
		return nil
	}
	s.current, s.since = patch.Faults, now
	return nil
}

// faultsView is what GET /admin/faults answers.
type faultsView struct {
	Faults
	Since   float64       `json:"since"`
	Pending *pendingFault `json:"pending"`
}

type pendingFault struct {
	Faults
	At float64 `json:"at"`
}

func (s *faultSwitch) View() faultsView {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyDue()
	view := faultsView{Faults: s.current, Since: unixSeconds(s.since)}
	if s.pending != nil {
		view.Pending = &pendingFault{Faults: s.pending.faults, At: unixSeconds(s.pending.at)}
	}
	return view
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
