import {MetricsComponent} from '@loopback/metrics';
import {juggler, RepositoryMixin} from '@loopback/repository';
import {RestApplication} from '@loopback/rest';
import {Client, createRestAppClient, expect} from '@loopback/testlab';
import {MasterJobExecutorBindings, MasterJobExecutorComponent} from '../../src';
import {waitFor} from '../../cluster-kit';

class App extends RepositoryMixin(RestApplication) {}

describe('metrics and health (memory)', () => {
  let app: App;
  let client: Client;

  before(async () => {
    app = new App({rest: {port: 0, host: '127.0.0.1'}});
    app.dataSource(new juggler.DataSource({name: 'db', connector: 'memory'}));
    app.component(MetricsComponent);
    app.configure(MasterJobExecutorBindings.COMPONENT).to({
      initDelay: 0,
      heartbeatInterval: 20,
      leaseDuration: 200,
    });
    app.component(MasterJobExecutorComponent);
    await app.migrateSchema();
    await app.start();
    client = createRestAppClient(app);
  });
  after(() => app.stop());

  it('exposes per-lock metrics at /metrics', async () => {
    const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
    let renewed = 0;
    executor.on('renewed', () => renewed++);
    const master = executor.startMaster({lockName: 'METRICS-JOB', masterJob: {start() {}}});
    await waitFor('a few renewals', () => renewed >= 3, 3000);
    const res = await client.get('/metrics').expect(200);
    const text: string = res.text;
    const line = (pattern: RegExp) => text.split('\n').find(l => pattern.test(l));
    expect(line(/^master_job_executor_is_master\{lock_name="METRICS-JOB"\} 1$/)).to.be.ok();
    expect(line(/^master_job_executor_fencing_token\{lock_name="METRICS-JOB"\} 1$/)).to.be.ok();
    expect(
      line(
        /^master_job_executor_transitions_total\{lock_name="METRICS-JOB",to="master",reason="acquired"\} 1$/,
      ),
    ).to.be.ok();
    const renewals = line(
      /^master_job_executor_renewal_duration_seconds_count\{lock_name="METRICS-JOB"\}/,
    );
    expect(Number(renewals!.split(' ')[1])).to.be.greaterThan(0);
    const age = line(/^master_job_executor_seconds_since_renewal\{lock_name="METRICS-JOB"\}/);
    expect(Number(age!.split(' ')[1])).to.be.within(0, 0.2);
    expect(text).to.match(/^# TYPE master_job_executor_renewal_failures_total counter$/m);
    expect(text).to.match(/^# TYPE master_job_executor_leaderless_seconds_total counter$/m);

    await master.stop();
    const after = await client.get('/metrics').expect(200);
    expect(after.text).to.match(/^master_job_executor_is_master\{lock_name="METRICS-JOB"\} 0$/m);
    expect(after.text).to.match(
      /^master_job_executor_transitions_total\{lock_name="METRICS-JOB",to="stopped",reason="stopped"\} 1$/m,
    );
  });

  it('shows a group in /metrics and in the status endpoint: members, owned, unowned', async () => {
    const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
    const group = executor.startGroup({
      groupName: 'METRICS-GROUP',
      resources: ['a', 'b', 'c'],
      job: {start() {}},
    });
    await waitFor('the group runs', () => group.owned().length === 3, 3000);
    const id = executor.instanceId;
    const res = await client.get('/metrics').expect(200);
    expect(res.text).to.containEql(
      `master_job_executor_group_owned{group_name="METRICS-GROUP",instance_id="${id}"} 3`,
    );
    expect(res.text).to.containEql(
      'master_job_executor_group_members{group_name="METRICS-GROUP"} 1',
    );
    const status = await client.get('/api/MasterControls/status').expect(200);
    expect(status.body.groups).to.containDeep([
      {groupName: 'METRICS-GROUP', resources: 3, unowned: 0, members: [{instanceId: id, owned: 3}]},
    ]);
    expect(status.body.localGroups).to.containDeep([
      {groupName: 'METRICS-GROUP', state: 'running', owned: ['a', 'b', 'c']},
    ]);
    // Member rows are shown under groups, not as locks.
    const names: string[] = status.body.locks.map((l: {lockName: string}) => l.lockName);
    expect(names.filter(n => n.startsWith('METRICS-GROUP'))).to.eql([
      'METRICS-GROUP/a',
      'METRICS-GROUP/b',
      'METRICS-GROUP/c',
    ]);
    await group.stop();
    const after = await client.get('/api/MasterControls/status').expect(200);
    expect(after.body.groups).to.containDeep([
      {groupName: 'METRICS-GROUP', unowned: 3, members: []},
    ]);
  });

  it('answers the health check', async () => {
    const res = await client.get('/api/MasterControls/health').expect(200);
    expect(res.body).to.containDeep({healthy: true});
  });
});
