// The README's usage example compiles, as a user would write it: its ts
// blocks become src/application.ts and src/index.ts of a scratch app that
// imports 'loopback4-master-job-executor' (mapped to this package's sources),
// type-checked with the project's TypeScript.

import {expect} from '@loopback/testlab';
import {execFile} from 'child_process';
import {mkdirSync, readFileSync, rmSync, writeFileSync} from 'fs';
import path from 'path';
import {promisify} from 'util';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../../..');

function readmeBlocks(): string[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  return [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map(m => m[1]);
}

async function typeCheck(dir: string, files: Record<string, string>): Promise<string> {
  rmSync(dir, {recursive: true, force: true});
  mkdirSync(path.join(dir, 'src'), {recursive: true});
  for (const [name, text] of Object.entries(files))
    writeFileSync(path.join(dir, 'src', name), text);
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

describe('the README example', function () {
  this.timeout(120000);
  const dir = path.join(ROOT, '.tmp', `readme-example-${process.pid}`);
  after(() => rmSync(dir, {recursive: true, force: true}));

  it('is an application.ts and an index.ts that compile against the package', async () => {
    const [application, index] = readmeBlocks();
    expect(readmeBlocks()).to.have.length(2);
    expect(index).to.match(/from '\.\/application'/);
    const errors = await typeCheck(dir, {'application.ts': application, 'index.ts': index});
    expect(errors).to.equal('');
  });

  it('fails the check when the example names something the package does not export', async () => {
    const [application, index] = readmeBlocks();
    const broken = application.replace(
      'MasterJobExecutorComponent,',
      'MasterJobExecutorComponentX,',
    );
    const errors = await typeCheck(dir, {'application.ts': broken, 'index.ts': index});
    expect(errors).to.match(/MasterJobExecutorComponentX/);
  });
});
