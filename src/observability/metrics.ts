/* eslint-disable @typescript-eslint/naming-convention */
// (Prometheus label names are snake_case.)
// Prometheus metrics through prom-client's default registry, which
// @loopback/metrics serves at /metrics. Used only when prom-client is
// installed (it comes with @loopback/metrics).

import debugFactory from 'debug';
import type {MasterJobExecutor} from '../services/master-job-executor';

const debug = debugFactory('loopback:master-job-executor:metrics');

type PromClient = typeof import('prom-client');

const PREFIX = 'master_job_executor_';

function loadPromClient(): PromClient | undefined {
  try {
    return require('prom-client');
  } catch {
    return undefined;
  }
}

/** Executors whose masters the scrape-time gauges report. */
const exposed = new Set<MasterJobExecutor>();

/** Stops reporting an executor's masters (on app.stop()). */
export function unexposeMetrics(executor: MasterJobExecutor): void {
  exposed.delete(executor);
}

/** Registers the metrics and feeds them from the executor's events; false without prom-client. */
export function exposeMetrics(executor: MasterJobExecutor): boolean {
  const prom = loadPromClient();
  if (!prom) {
    debug('prom-client is not installed: no metrics');
    return false;
  }
  const {register} = prom;
  // Idempotent per registry: several apps in one process share the series.
  const metric = <T>(name: string, make: () => T): T =>
    (register.getSingleMetric(PREFIX + name) as T | undefined) ?? make();
  const lockLabel = ['lock_name'];

  const isMaster = metric(
    'is_master',
    () =>
      new prom.Gauge({
        name: PREFIX + 'is_master',
        help: '1 while this replica is master of the lock',
        labelNames: lockLabel,
      }),
  );
  const token = metric(
    'fencing_token',
    () =>
      new prom.Gauge({
        name: PREFIX + 'fencing_token',
        help: 'Fencing token of the current mastership of this replica',
        labelNames: lockLabel,
      }),
  );
  const transitions = metric(
    'transitions_total',
    () =>
      new prom.Counter({
        name: PREFIX + 'transitions_total',
        help: 'State changes of this replica, by new state and reason',
        labelNames: ['lock_name', 'to', 'reason'],
      }),
  );
  const renewal = metric(
    'renewal_duration_seconds',
    () =>
      new prom.Histogram({
        name: PREFIX + 'renewal_duration_seconds',
        help: 'Latency of successful renewals',
        labelNames: lockLabel,
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      }),
  );
  const failures = metric(
    'renewal_failures_total',
    () =>
      new prom.Counter({
        name: PREFIX + 'renewal_failures_total',
        help: 'Renewals that failed or timed out',
        labelNames: lockLabel,
      }),
  );
  const leaderless = metric(
    'leaderless_seconds_total',
    () =>
      new prom.Counter({
        name: PREFIX + 'leaderless_seconds_total',
        help: 'Time this replica observed the lock with no live master (not counting disabled time)',
        labelNames: lockLabel,
      }),
  );
  metric(
    'seconds_since_renewal',
    () =>
      new prom.Gauge({
        name: PREFIX + 'seconds_since_renewal',
        help: 'Master only: time since its last successful renewal was sent',
        labelNames: lockLabel,
        collect() {
          this.reset();
          for (const s of [...exposed].flatMap(e => e.status())) {
            if (s.renewalAgeMs !== undefined) {
              this.set({lock_name: s.lockName}, s.renewalAgeMs / 1000);
            }
          }
        },
      }),
  );

  metric(
    'group_owned',
    () =>
      new prom.Gauge({
        name: PREFIX + 'group_owned',
        help: 'Resources of a group each live member owns, as this replica sees the group',
        labelNames: ['group_name', 'instance_id'],
        collect() {
          this.reset();
          for (const g of [...exposed].flatMap(e => e.groupStatus())) {
            for (const m of g.members) {
              this.set({group_name: g.groupName, instance_id: m.instanceId}, m.owned);
            }
          }
        },
      }),
  );
  metric(
    'group_members',
    () =>
      new prom.Gauge({
        name: PREFIX + 'group_members',
        help: 'Live members of a group (or of a lock with minMembers), as this replica sees them',
        labelNames: ['group_name'],
        collect() {
          this.reset();
          for (const g of [...exposed].flatMap(e => e.groupStatus())) {
            this.set({group_name: g.groupName}, g.members.length);
          }
        },
      }),
  );

  exposed.add(executor);
  executor.on('master', (lockName: string, fencingToken: number) => {
    isMaster.set({lock_name: lockName}, 1);
    token.set({lock_name: lockName}, fencingToken);
  });
  executor.on('statechange', (lockName: string, _from: string, to: string, reason: string) => {
    transitions.inc({lock_name: lockName, to, reason});
    if (to !== 'master') isMaster.set({lock_name: lockName}, 0);
  });
  executor.on('renewed', (lockName: string, ms: number) =>
    renewal.observe({lock_name: lockName}, ms / 1000),
  );
  executor.on('renewalFailed', (lockName: string) => failures.inc({lock_name: lockName}));
  executor.on('leaderless', (lockName: string, ms: number) =>
    leaderless.inc({lock_name: lockName}, ms / 1000),
  );
  return true;
}
