package main

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"
)

// service is the sample HTTP service a canary release rolls out.
type service struct {
	version   string
	telemetry *telemetry
	faults    *faultSwitch
	flags     *flagSource // nil without a flags file
	log       *logger
	faultLog  []string // lines failed requests log, in turn
	failures  atomic.Uint64
	workMS    float64  // median simulated work per request, in ms
	noise     *noise   // nil: an ideal pod
	pods      []string // the other pods this process serves (-pods), host:port
}

// handler routes every path; each response says which version served it.
func (s *service) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.serveHealth)
	mux.HandleFunc("/metrics", s.serveMetrics)
	mux.HandleFunc("/admin/faults", s.serveFaults)
	mux.HandleFunc("/admin/pods", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string][]string{"pods": append([]string{}, s.pods...)})
	})
	mux.HandleFunc("/", s.serveUser)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", s.version)
		mux.ServeHTTP(w, r)
	})
}

func (s *service) serveHealth(w http.ResponseWriter, _ *http.Request) {
	if f, _ := s.faults.Current(); f.Unhealthy {
		http.Error(w, "unhealthy", http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}

func (s *service) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.telemetry.registry.writeTo(w)
}

func (s *service) serveFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPut:
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err == nil {
			err = s.faults.Patch(body)
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		s.log.Info("faults changed", "body", string(body))
	default:
		w.Header().Set("Allow", "GET, PUT")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use GET or PUT"})
		return
	}
	writeJSON(w, http.StatusOK, s.faults.View())
}

// serveUser does a request's simulated work, applies the faults in force and records it.
func (s *service) serveUser(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	variant := s.flags.variant(r.Header.Get("X-User-Id"))
	f, _ := s.faults.Current()

	stallFailed, cold := s.applyNoise(start)
	s.dbQuery(f)
	lookup := f
	if cold { // an empty cache: every lookup misses
		lookup.CacheMissRate = 1
	}
	cache := s.cacheLookup(lookup)
	s.outboundCall(f)
	work(s.workMS)
	if cold {
		work(s.workMS)
	}
	burnCPU(millis(f.CPUBurnMS))
	leakGoroutines(f.GoroutineLeak)
	allocateGarbage(f.GCPressureKB)

	hit := f.appliesTo(variant)
	if hit && f.LatencyMS > 0 && rand.Float64() < f.LatencyShare {
		select {
		case <-time.After(millis(f.LatencyMS)):
		case <-r.Context().Done():
		}
	}
	if hit && f.LatencyFactor > 1 { // everything this request did, (factor - 1) times again
		select {
		case <-time.After(time.Duration(float64(time.Since(start)) * (f.LatencyFactor - 1))):
		case <-r.Context().Done():
		}
	}
	code := http.StatusOK
	body := map[string]string{"version": s.version, "variant": variant, "cache": cache}
	if stallFailed || (hit && rand.Float64() < f.ErrorRate) {
		code = s.telemetry.requests.failureStatus()
		body["error"] = s.logFailure(r)
	} else if hit && rand.Float64() < f.LogErrorRate {
		s.logFailure(r) // a fault only the logs show: the user still gets a 200
	}
	writeJSON(w, code, body)

	path := normalizePath(r.URL.Path)
	s.telemetry.requests.record(normalizeMethod(r.Method), path, code, variant, time.Since(start).Seconds())
}

// logFailure logs the next of the fault log lines for a failed request and returns it.
func (s *service) logFailure(r *http.Request) string {
	if len(s.faultLog) == 0 {
		return "internal error"
	}
	line := s.faultLog[(s.failures.Add(1)-1)%uint64(len(s.faultLog))]
	s.log.Error(line, "method", r.Method, "path", r.URL.Path)
	return line
}

// userPaths are the paths counted by name; every other path counts as "other", so the
// series count stays bounded whatever clients request.
var userPaths = map[string]bool{"/": true, "/checkout": true}

func normalizePath(path string) string {
	if userPaths[path] {
		return path
	}
	return "other"
}

var knownMethods = map[string]bool{
	"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true,
}

func normalizeMethod(method string) string {
	if knownMethods[method] {
		return method
	}
	return "other"
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
