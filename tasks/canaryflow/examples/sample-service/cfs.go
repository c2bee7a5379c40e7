package main

import (
	"context"
	"time"
)

// cfsPeriod is the Linux CFS bandwidth-control enforcement period.
const cfsPeriod = 100 * time.Millisecond

// cfsAccounting simulates the kernel's CFS counters from the process's real CPU use: every
// period counts once, and counts as throttled when the CPU time used in it exceeded the quota.
// A real throttled container would also be slowed down; this only counts, so the cpu_burn fault
// shows up in the same series a cgroup would report.
type cfsAccounting struct {
	quota     time.Duration // CPU time allowed per period
	periods   *counterVec
	throttled *counterVec
	cpuTime   func() time.Duration
}

func newCFSAccounting(millicores int, t *telemetry) *cfsAccounting {
	return &cfsAccounting{
		quota:     cfsPeriod * time.Duration(millicores) / 1000,
		periods:   t.cfsPeriods,
		throttled: t.cfsThrottled,
		cpuTime:   processCPU,
	}
}

// throttledIn says whether a period in which `used` CPU time was spent exceeded the quota.
func (c *cfsAccounting) throttledIn(used time.Duration) bool { return used > c.quota }

func (c *cfsAccounting) run(ctx context.Context) {
	ticker := time.NewTicker(cfsPeriod)
	defer ticker.Stop()
	last := c.cpuTime()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			now := c.cpuTime()
			c.periods.inc()
			if c.throttledIn(now - last) {
				c.throttled.inc()
			}
			last = now
		}
	}
}
