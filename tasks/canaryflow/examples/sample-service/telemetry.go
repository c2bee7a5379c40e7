package main

import (
	"runtime"
	"runtime/debug"
	"syscall"
	"time"
)

// telemetry is every metric this service exposes.
type telemetry struct {
	registry        *registry
	requests        requestMetrics
	clientRequests  *counterVec
	dbQueryDuration *histogramVec
	cacheRequests   *counterVec
	cfsPeriods      *counterVec
	cfsThrottled    *counterVec
}

func newTelemetry(version string, flavour metricsFlavour) *telemetry {
	t := &telemetry{
		registry: &registry{},
		requests: newRequestMetrics(flavour),
		clientRequests: newCounterVec("http_client_requests_total",
			"Total number of outbound HTTP calls by host and status code (\"error\": no response).",
			"host", "code"),
		dbQueryDuration: newHistogramVec("db_query_duration_seconds",
			"Time spent in database queries.",
			defaultBuckets, "operation"),
		cacheRequests: newCounterVec("cache_requests_total",
			"Total number of cache lookups by result.",
			"result"),
		cfsPeriods: newCounterVec("container_cpu_cfs_periods_total",
			"Number of elapsed CFS enforcement periods (simulated from real CPU use)."),
		cfsThrottled: newCounterVec("container_cpu_cfs_throttled_periods_total",
			"Number of CFS periods in which the CPU quota was exceeded (simulated from real CPU use)."),
	}
	for _, result := range []string{"hit", "miss"} {
		t.cacheRequests.add(0, result)
	}
	t.cfsPeriods.add(0)
	t.cfsThrottled.add(0)
	for _, c := range []collector{
		t.clientRequests, t.dbQueryDuration, t.cacheRequests,
		t.cfsPeriods, t.cfsThrottled,
		newGaugeFunc("go_goroutines", "Number of goroutines that currently exist.", "gauge",
			func() float64 { return float64(runtime.NumGoroutine()) }),
		newGaugeFunc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
			"counter", func() float64 { return processCPU().Seconds() }),
		&summaryFunc{
			desc: desc{fqName: "go_gc_duration_seconds", typ: "summary",
				help: "A summary of the pause duration of garbage collection cycles."},
			read: gcPauseSummary,
		},
		&constGauge{
			desc: desc{fqName: "sample_build_info", typ: "gauge", labels: []string{"version", "goversion"},
				help: "A metric with a constant '1' value labeled by version and Go version."},
			values: []string{version, runtime.Version()},
			value:  1,
		},
	} {
		t.registry.register(c)
	}
	for _, c := range t.requests.collectors() {
		t.registry.register(c)
	}
	return t
}

// gcPauseSummary reads GC pauses as client_golang's Go collector does: quantiles 0, .25, .5,
// .75 and 1 of the recent pauses from debug.ReadGCStats, the total pause time, and NumGC.
func gcPauseSummary() summarySnapshot {
	stats := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
	debug.ReadGCStats(&stats)
	quantiles := map[float64]float64{}
	for i, q := range []float64{0, 0.25, 0.5, 0.75, 1} {
		quantiles[q] = stats.PauseQuantiles[i].Seconds()
	}
	return summarySnapshot{quantiles: quantiles, sum: stats.PauseTotal.Seconds(), count: uint64(stats.NumGC)}
}

// processCPU is the user plus system CPU time this process has used.
func processCPU() time.Duration {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}
