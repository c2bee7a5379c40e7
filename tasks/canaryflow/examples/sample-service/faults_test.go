package main

import (
	"strings"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestStartFaultsSwitchOnOnlyAfterTheDelayAndSinceIsWhenTheyDid(t *testing.T) {
	clock := &fakeClock{time.Unix(1000, 0)}
	faulty := healthyFaults()
	faulty.ErrorRate = 0.5
	s := newFaultSwitch(faulty, 10*time.Second, clock.now)

	clock.t = clock.t.Add(9 * time.Second)
	if f, _ := s.Current(); f.ErrorRate != 0 {
		t.Fatalf("error_rate %v before the delay, want 0", f.ErrorRate)
	}
	clock.t = clock.t.Add(5 * time.Second)
	f, since := s.Current()
	if f.ErrorRate != 0.5 {
		t.Fatalf("error_rate %v after the delay, want 0.5", f.ErrorRate)
	}
	if !since.Equal(time.Unix(1010, 0)) {
		t.Fatalf("since = %v, want the moment the delay ended", since)
	}
}

func TestPatchMergesOverTheFaultsInForce(t *testing.T) {
	clock := &fakeClock{time.Unix(1000, 0)}
	s := newFaultSwitch(healthyFaults(), 0, clock.now)
	clock.t = time.Unix(1005, 0)
	if err := s.Patch([]byte(`{"error_rate": 0.2}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Patch([]byte(`{"latency_ms": 300}`)); err != nil {
		t.Fatal(err)
	}
	f, since := s.Current()
	if f.ErrorRate != 0.2 || f.LatencyMS != 300 || f.CacheMissRate != 0.1 {
		t.Fatalf("faults after two patches: %+v", f)
	}
	if since.Unix() != 1005 {
		t.Fatalf("since = %v, want the time of the last change", since)
	}
}

func TestPatchWithAfterSchedulesTheChange(t *testing.T) {
	clock := &fakeClock{time.Unix(1000, 0)}
	s := newFaultSwitch(healthyFaults(), 0, clock.now)
	if err := s.Patch([]byte(`{"unhealthy": true, "after": 2}`)); err != nil {
		t.Fatal(err)
	}
	if s.View().Pending == nil {
		t.Fatal("a delayed change is reported as pending")
	}
	if f, _ := s.Current(); f.Unhealthy {
		t.Fatal("the change took effect before its delay")
	}
	clock.t = clock.t.Add(2 * time.Second)
	if f, _ := s.Current(); !f.Unhealthy {
		t.Fatal("the change did not take effect after its delay")
	}
}

func TestBadPatchesAreRejectedAndChangeNothing(t *testing.T) {
	s := newFaultSwitch(healthyFaults(), 0, time.Now)
	for body, want := range map[string]string{
		`{"error_rate": 1.5}`:      "error_rate",
		`{"eror_rate": 0.1}`:       "unknown field",
		`{"latency_ms": -1}`:       "latency_ms",
		`{"after": -3}`:            "after",
		`{"goroutine_leak": 5000}`: "goroutine_leak",
		`not json`:                 "faults body",
	} {
		err := s.Patch([]byte(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Patch(%s) = %v, want an error naming %q", body, err, want)
		}
	}
	if f, _ := s.Current(); f != healthyFaults() {
		t.Fatalf("rejected patches changed the faults: %+v", f)
	}
}

func TestFlagOnOnlyFaultsHitOnlyTheOnVariant(t *testing.T) {
	f := Faults{FlagOnOnly: true}
	if !f.appliesTo("on") || f.appliesTo("off") || f.appliesTo("") {
		t.Fatal("flag_on_only faults apply to variant \"on\" alone")
	}
	if !(Faults{}).appliesTo("off") {
		t.Fatal("without flag_on_only, faults apply to every request")
	}
}

func TestConfigFallsBackToEnvironmentAndFlagsWin(t *testing.T) {
	env := map[string]string{"SAMPLE_ERROR_RATE": "0.3", "SAMPLE_LISTEN": "127.0.0.1:9", "SAMPLE_AFTER": "2"}
	cfg, err := parseConfig([]string{"-listen", "127.0.0.1:7"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.listen != "127.0.0.1:7" || cfg.faults.ErrorRate != 0.3 || cfg.after != 2*time.Second {
		t.Fatalf("config: %+v", cfg)
	}
	if _, err := parseConfig(nil, func(k string) string {
		return map[string]string{"SAMPLE_ERROR_RATE": "lots"}[k]
	}); err == nil || !strings.Contains(err.Error(), "SAMPLE_ERROR_RATE") {
		t.Fatalf("a bad environment value is an error naming it, got %v", err)
	}
}

func TestNewFaultsAreBoundedAndALatencyFactorBelowOneIsRefused(t *testing.T) {
	for body, want := range map[string]string{
		`{"latency_factor": 0.5}`:      "latency_factor",
		`{"gc_pressure_kb": -1}`:       "gc_pressure_kb",
		`{"gc_pressure_kb": 99999999}`: "gc_pressure_kb",
		`{"log_error_rate": 1.5}`:      "log_error_rate",
	} {
		s := newFaultSwitch(healthyFaults(), 0, time.Now)
		err := s.Patch([]byte(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming %s", body, err, want)
		}
	}
	s := newFaultSwitch(healthyFaults(), 0, time.Now)
	if err := s.Patch([]byte(`{"latency_factor": 1.3, "gc_pressure_kb": 512, "log_error_rate": 0.1}`)); err != nil {
		t.Fatal(err)
	}
}

func TestGarbageIsAllocatedAndDropped(t *testing.T) {
	allocateGarbage(130)
	if garbageSink != nil {
		t.Fatal("the garbage must not stay reachable")
	}
}
