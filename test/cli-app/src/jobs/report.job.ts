import {masterJob, MasterJob, MasterJobContext} from 'loopback4-master-job-executor';

/** Runs on one replica of the cluster at a time. */
@masterJob({lockName: 'REPORT'})
export class ReportJob implements MasterJob {
  start({lockName, instanceId, fencingToken}: MasterJobContext) {
    print({event: 'start', lockName, instanceId, fencingToken});
  }

  stop({lockName, instanceId, fencingToken, reason}: MasterJobContext) {
    print({event: 'stop', lockName, instanceId, fencingToken, reason});
  }
}

function print(line: object) {
  process.stdout.write(JSON.stringify({...line, at: Date.now()}) + '\n');
}
