// The README's Usage, checked without the generator (fast, no database): it is
// made of additions to the generated files and new files only, each marked for
// test/cluster/generated-app.test.ts to apply, and each compiles against the
// package's sources when put in the smallest frame of its place (a class
// constructor, an async function after app.start(), a config object). The
// proof in a real `lb4 app` is the cluster test.

import {expect} from '@loopback/testlab';
import {execFile} from 'child_process';
import {mkdirSync, rmSync, writeFileSync} from 'fs';
import path from 'path';
import {promisify} from 'util';
import {Addition, readmeAdditions, section} from '../fixtures/readme';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../../..');

async function typeCheck(dir: string, files: Record<string, string>): Promise<string> {
  rmSync(dir, {recursive: true, force: true});
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), {recursive: true});
    writeFileSync(path.join(dir, name), text);
  }
  const tsconfig = {
    extends: path.join(ROOT, 'node_modules/@loopback/build/config/tsconfig.common.json'),
    compilerOptions: {
      noEmit: true,
      baseUrl: '.',
      paths: {'loopback4-master-job-executor': [path.join(ROOT, 'src')]},
    },
    include: ['src'],
  };
  writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
  try {
    await run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', dir]);
    return '';
  } catch (err) {
    return String((err as {stdout?: string}).stdout ?? err);
  }
}

/** Each addition in the smallest frame of its place; new files as they are. */
function framed(additions: Addition[]): Record<string, string> {
  const code = (where: string) =>
    additions
      .filter(a => a.where === where)
      .map(a => a.code)
      .join('');
  const files: Record<string, string> = {};
  for (const a of additions.filter(x => x.kind === 'file')) files[a.where] = a.code;
  files['src/application.ts'] = [
    "import {Application} from '@loopback/core';",
    code('src/application.ts imports'),
    'export class App extends Application {',
    '  constructor() {',
    '    super();',
    code('src/application.ts constructor'),
    '  }',
    '}',
  ].join('\n');
  files['src/index.ts'] = [
    "import {Application, ApplicationConfig} from '@loopback/core';",
    code('src/index.ts imports'),
    'export async function main(app: Application) {',
    '  await app.start();',
    code('src/index.ts main, after app.start()'),
    '}',
    'export const config = {',
    code('src/index.ts config'),
    '};',
    'export const checked: ApplicationConfig = config;',
  ].join('\n');
  return files;
}

describe('the README Usage', function () {
  this.timeout(120000);
  const dir = path.join(ROOT, '.tmp', `readme-example-${process.pid}`);
  after(() => rmSync(dir, {recursive: true, force: true}));

  it('is additions to generated files and new files, each marked, never a whole generated file', () => {
    const usage = section('Usage');
    const tsBlocks = [...usage.matchAll(/```ts\n/g)];
    const additions = readmeAdditions(usage);
    expect(additions).to.have.length(tsBlocks.length); // every ts block is marked
    expect(additions.map(a => `${a.kind}: ${a.where}`)).to.deepEqual([
      'add: src/application.ts imports',
      'add: src/application.ts constructor',
      'file: src/jobs/report.job.ts',
      'add: src/index.ts config',
      'add: src/index.ts imports',
      'add: src/index.ts main, after app.start()',
    ]);
    for (const a of additions) {
      expect(a.code).to.not.match(/class \w+Application|function main\(|require\.main/);
    }
  });

  it('compiles against the package, each addition in the frame of its place', async () => {
    const errors = await typeCheck(dir, framed(readmeAdditions(section('Usage'))));
    expect(errors).to.equal('');
  });

  it('fails the check when the example names something the package does not export', async () => {
    const broken = readmeAdditions(section('Usage')).map(a => ({
      ...a,
      code: a.code.replace('MasterJobExecutorComponent', 'MasterJobExecutorComponentX'),
    }));
    const errors = await typeCheck(dir, framed(broken));
    expect(errors).to.match(/MasterJobExecutorComponentX/);
  });
});
