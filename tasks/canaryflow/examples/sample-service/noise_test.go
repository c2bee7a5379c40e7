package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestAPodStallsOncePerPeriodAtItsOwnPhase(t *testing.T) {
	start := time.Unix(1000, 0)
	n := &noise{noiseConfig: noiseConfig{stallEvery: 30 * time.Second, stallFor: time.Second}, phase: 10 * time.Second, started: start}
	if got := n.stalledUntil(start.Add(5 * time.Second)); !got.IsZero() {
		t.Fatalf("5 s in: stalled until %v, want no stall", got)
	}
	in := start.Add(10*time.Second + 300*time.Millisecond)
	if got, want := n.stalledUntil(in), start.Add(11*time.Second); !got.Equal(want) {
		t.Fatalf("10.3 s in: stalled until %v, want %v", got, want)
	}
	if got := n.stalledUntil(start.Add(40*time.Second + 500*time.Millisecond)); got.IsZero() {
		t.Fatal("40.5 s in: the next period's stall is missing")
	}
	if got := n.stalledUntil(start.Add(11 * time.Second)); !got.IsZero() {
		t.Fatalf("11 s in: the stall should be over, got %v", got)
	}
}

func TestAPodIsColdOnlyForItsWarmUp(t *testing.T) {
	start := time.Unix(1000, 0)
	n := &noise{noiseConfig: noiseConfig{coldFor: 30 * time.Second}, started: start}
	if !n.cold(start.Add(29*time.Second)) || n.cold(start.Add(30*time.Second)) {
		t.Fatal("cold for exactly the first 30 s")
	}
	if (&noise{started: start}).cold(start) {
		t.Fatal("no warm-up configured: never cold")
	}
}

func TestThePoolDialsOnlyItsSizeAndRefusesAtTheConfiguredShare(t *testing.T) {
	n := &noise{noiseConfig: noiseConfig{poolSize: 3, refused: 0.1}}
	opened, refused := n.dial(0.05)
	if !opened || !refused {
		t.Fatalf("first dial with chance 0.05 < 0.1: opened %v refused %v, want both", opened, refused)
	}
	if opened, refused = n.dial(0.5); !opened || refused {
		t.Fatalf("second dial with chance 0.5: opened %v refused %v, want opened only", opened, refused)
	}
	n.dial(0.5)
	if opened, _ = n.dial(0.0); opened {
		t.Fatal("a full pool opens no more connections")
	}
}

func TestNoiseFlagsNoPodCouldHaveAreRefused(t *testing.T) {
	for _, args := range [][]string{
		{"-stall-every", "1s", "-stall-for", "2s"},
		{"-stall-fail", "1.5"},
		{"-pool-size", "-1"},
	} {
		if _, err := parseConfig(args, func(string) string { return "" }); err == nil {
			t.Errorf("%v: accepted, want an error", args)
		}
	}
	cfg, err := parseConfig([]string{"-stall-every", "30s", "-cold-for", "20s", "-pool-size", "16"}, func(string) string { return "" })
	if err != nil || cfg.noise.stallEvery != 30*time.Second || cfg.noise.poolSize != 16 {
		t.Fatalf("valid noise flags: %+v, %v", cfg.noise, err)
	}
}

func TestOneProcessServesEachPodOnAPortOfItsOwnWithItsOwnMetrics(t *testing.T) {
	cfg, err := parseConfig([]string{"-pods", "3"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseConfig([]string{"-pods", "0"}, func(string) string { return "" }); err == nil {
		t.Fatal("-pods 0 accepted")
	}
	first, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	served := make(chan error, 3)
	servers, err := servePods(cfg, first, newLogger(io.Discard), served)
	if err != nil || len(servers) != 2 {
		t.Fatalf("servePods: %d servers, %v; want 2", len(servers), err)
	}
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	for _, server := range servers {
		at := server.Addr
		url := fmt.Sprintf("http://%s/", at)
		if resp, err := http.Get(url); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("pod at %s: %v %v", at, resp, err)
		}
		resp, err := http.Get(fmt.Sprintf("http://%s/metrics", at))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `http_requests_total{`) || strings.Count(string(body), `code="200"`) == 0 {
			t.Fatalf("pod at %s: its own request served is not in its metrics:\n%s", at, body)
		}
	}
}

func TestTheFirstPodListsTheOthers(t *testing.T) {
	svc := &service{pods: []string{"127.0.0.1:4001", "127.0.0.1:4002"}}
	recorder := httptest.NewRecorder()
	svc.handler().ServeHTTP(recorder, httptest.NewRequest(http.MethodGet, "/admin/pods", nil))
	if got := recorder.Body.String(); !strings.Contains(got, `"pods":["127.0.0.1:4001","127.0.0.1:4002"]`) {
		t.Fatalf("GET /admin/pods: %s", got)
	}
}
