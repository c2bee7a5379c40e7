// Command sample-service is the HTTP service canaryflow's demos release: it does simulated
// work, exposes Prometheus metrics by hand, serves a feature flag from a flagd file, and
// misbehaves on demand through fault switches.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// version is stamped at build time: -ldflags "-X main.version=v2".
var version = "dev"

// shutdownGrace bounds how long in-flight requests may finish after SIGTERM.
const shutdownGrace = 3 * time.Second

// envPrefix names the environment equivalents of the flags: -cpu-burn is SAMPLE_CPU_BURN.
const envPrefix = "SAMPLE_"

const defaultFaultLog = "upstream call failed: context deadline exceeded|" +
	"dial tcp 10.0.0.7:5432: connect: connection refused"

type config struct {
	listen          string
	quotaMillicores int
	flagsFile       string
	flagKey         string
	faults          Faults
	after           time.Duration
	faultLog        []string
	workMS          float64
	metrics         metricsFlavour
	noise           noiseConfig
	pods            int
}

// parseConfig reads flags, falling back to SAMPLE_* environment variables for flags not given.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	cfg := config{faults: healthyFaults()}
	fs := flag.NewFlagSet("sample-service", flag.ContinueOnError)
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:8080", "address to listen on")
	fs.IntVar(&cfg.quotaMillicores, "cpu-quota-millicores", 500, "simulated CFS CPU quota")
	fs.StringVar(&cfg.flagsFile, "flags-file", "", "flagd JSON file to serve the feature flag from")
	fs.StringVar(&cfg.flagKey, "flag-key", "new-checkout", "feature flag whose variant labels requests")
	f := &cfg.faults
	fs.Float64Var(&f.ErrorRate, "error-rate", f.ErrorRate, "share of user requests answered 500")
	fs.Float64Var(&f.LatencyMS, "latency-ms", f.LatencyMS, "extra latency in ms")
	fs.Float64Var(&f.LatencyShare, "latency-share", f.LatencyShare, "share of requests with extra latency")
	fs.IntVar(&f.GoroutineLeak, "goroutine-leak", f.GoroutineLeak, "goroutines leaked per request")
	fs.Float64Var(&f.CPUBurnMS, "cpu-burn", f.CPUBurnMS, "busy-loop ms per request")
	fs.Float64Var(&f.SlowDBMS, "slow-db-ms", f.SlowDBMS, "ms added to each simulated DB query")
	fs.Float64Var(&f.OutboundErrorRate, "outbound-error-rate", f.OutboundErrorRate, "share of outbound calls failing")
	fs.Float64Var(&f.CacheMissRate, "cache-miss-rate", f.CacheMissRate, "share of cache lookups missing")
	fs.Float64Var(&f.LatencyFactor, "latency-factor", f.LatencyFactor, "every request takes this many times as long")
	fs.IntVar(&f.GCPressureKB, "gc-pressure-kb", f.GCPressureKB, "KiB of short-lived garbage per request")
	fs.Float64Var(&f.LogErrorRate, "log-error-rate", f.LogErrorRate, "share of requests logging an error yet answering 200")
	fs.Float64Var(&cfg.workMS, "work-ms", 0, "median simulated work per request in ms (lognormal); 0: none")
	fs.BoolVar(&f.Unhealthy, "unhealthy", f.Unhealthy, "answer /healthz with 503")
	fs.BoolVar(&f.FlagOnOnly, "flag-on-only", f.FlagOnOnly, "error and latency faults hit only flag-on requests")
	metrics := fs.String("metrics", "go", "how user requests are exported: go (client_golang), otel (OpenTelemetry) or grpc (go-grpc-prometheus)")
	afterSeconds := fs.Float64("after", 0, "seconds after start before the faults above switch on")
	fs.IntVar(&cfg.pods, "pods", 1, "pods this process serves: the first on -listen, the others on free ports (GET /admin/pods lists them), each with its own metrics and stall phase")
	fs.DurationVar(&cfg.noise.stallEvery, "stall-every", 0, "the pod stalls once per this period, at a random phase (0: never)")
	fs.DurationVar(&cfg.noise.stallFor, "stall-for", time.Second, "how long a stall lasts")
	fs.Float64Var(&cfg.noise.stallFail, "stall-fail", 0, "share of requests caught in a stall answered 500")
	fs.DurationVar(&cfg.noise.coldFor, "cold-for", 0, "the pod starts cold for this long: twice the work, its cache missing")
	fs.Int64Var(&cfg.noise.poolSize, "pool-size", 0, "connections of a pool filled lazily by the first requests (0: none)")
	fs.Float64Var(&cfg.noise.refused, "pool-refused", 0.1, "share of the pool's dials refused (and logged) once")
	faultLog := fs.String("fault-log", defaultFaultLog, `lines a failed request logs, in turn, "|"-separated; "" logs none`)

	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if err := applyEnv(fs, getenv); err != nil {
		return cfg, err
	}
	if *afterSeconds < 0 {
		return cfg, fmt.Errorf("-after: %v is negative; use seconds >= 0", *afterSeconds)
	}
	if err := cfg.faults.validate(); err != nil {
		return cfg, err
	}
	if !(cfg.workMS >= 0 && cfg.workMS <= 10000) { // also refuses NaN
		return cfg, fmt.Errorf("-work-ms: %v; use milliseconds from 0 to 10000", cfg.workMS)
	}
	if cfg.pods < 1 || cfg.pods > 16 {
		return cfg, fmt.Errorf("-pods: %d; use 1 to 16", cfg.pods)
	}
	if err := cfg.noise.validate(); err != nil {
		return cfg, err
	}
	if cfg.quotaMillicores <= 0 {
		return cfg, fmt.Errorf("-cpu-quota-millicores: %d; use a positive number", cfg.quotaMillicores)
	}
	flavour, err := parseFlavour(*metrics)
	if err != nil {
		return cfg, err
	}
	cfg.metrics = flavour
	cfg.after = seconds(*afterSeconds)
	if *faultLog != "" {
		cfg.faultLog = strings.Split(*faultLog, "|")
	}
	return cfg, nil
}

// applyEnv sets every flag not given on the command line from its environment variable.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if value := getenv(name); !given[f.Name] && value != "" && err == nil {
			if setErr := fs.Set(f.Name, value); setErr != nil {
				err = fmt.Errorf("%s: %v", name, setErr)
			}
		}
	})
	return err
}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	log := newLogger(os.Stderr)
	cfg, err := parseConfig(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		log.Error("bad configuration", "error", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	svc := newService(cfg, log)
	if cfg.flagsFile != "" {
		if svc.flags, err = newFlagSource(cfg.flagsFile, cfg.flagKey, log); err != nil {
			log.Error("bad configuration", "error", err)
			return 2
		}
		svc.telemetry.registry.register(svc.flags.documentInfo())
		go svc.flags.run(ctx)
	}
	go newCFSAccounting(cfg.quotaMillicores, svc.telemetry).run(ctx)
	if cfg.after > 0 {
		time.AfterFunc(cfg.after, func() {
			f, since := svc.faults.Current()
			faults, _ := json.Marshal(f)
			log.Info("start faults switched on", "faults", string(faults), "since", fmt.Sprintf("%.3f", unixSeconds(since)))
		})
	}

	listener, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		log.Error("cannot listen", "error", err)
		return 1
	}
	log.Info("starting sample-service", "version", version, "listen", listener.Addr())
	served := make(chan error, cfg.pods)
	others, err := servePods(cfg, listener, log, served)
	if err != nil {
		log.Error("cannot listen", "error", err)
		return 1
	}
	for _, other := range others {
		svc.pods = append(svc.pods, other.Addr)
	}
	server := &http.Server{Handler: svc.handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { served <- server.Serve(listener) }()

	select {
	case err := <-served:
		log.Error("server failed", "error", err)
		return 1
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	for _, s := range append([]*http.Server{server}, others...) {
		if err := s.Shutdown(shutdownCtx); err != nil {
			log.Error("shutdown incomplete", "error", err)
		}
	}
	log.Info("stopped", "version", version)
	return 0
}

// newService is one pod: its own metrics, fault switch and noise (a stall phase of its own).
func newService(cfg config, log *logger) *service {
	return &service{
		version:   version,
		telemetry: newTelemetry(version, cfg.metrics),
		faults:    newFaultSwitch(cfg.faults, cfg.after, time.Now),
		log:       log,
		faultLog:  cfg.faultLog,
		workMS:    cfg.workMS,
		noise:     cfg.noise.begin(time.Now()),
	}
}

// servePods serves the -pods after the first on ports of their own (the host of -listen, any
// free port: GET /admin/pods on the first lists them), each a pod of its own (scraped as its
// own target), logging to the same output: one process for a small fleet.
func servePods(cfg config, first net.Listener, log *logger, served chan<- error) ([]*http.Server, error) {
	addr, ok := first.Addr().(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("-listen: %v is not a TCP address", first.Addr())
	}
	var servers []*http.Server
	for i := 1; i < cfg.pods; i++ {
		at := net.JoinHostPort(addr.IP.String(), "0")
		listener, err := net.Listen("tcp", at)
		if err != nil {
			for _, s := range servers {
				s.Close()
			}
			return nil, fmt.Errorf("-pods %d: pod %d: %w", cfg.pods, i+1, err)
		}
		server := &http.Server{Addr: listener.Addr().String(), Handler: newService(cfg, log).handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { served <- server.Serve(listener) }()
		log.Info("serving another pod", "listen", listener.Addr())
		servers = append(servers, server)
	}
	return servers, nil
}
