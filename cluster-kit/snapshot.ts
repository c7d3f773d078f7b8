// A private copy of the built code for runs of many minutes (the benchmark,
// `npm run chaos`): their replicas keep being spawned from it while a test
// run in the same checkout cleans and rebuilds dist/.

import {cpSync, mkdtempSync, rmSync, symlinkSync} from 'fs';
import os from 'os';
import path from 'path';

/** The checkout's dist/ (this file is dist/cluster-kit/snapshot.js). */
const DIST = path.resolve(__dirname, '..');

export interface DistSnapshot {
  /** The copy of dist/<relative>. */
  script(relative: string): string;
  remove(): void;
}

/** Copies dist/src, dist/example, dist/bench and dist/cluster-kit, and links node_modules. */
export function snapshotDist(prefix = 'mje-run-'): DistSnapshot {
  const root = mkdtempSync(path.join(os.tmpdir(), prefix));
  for (const dir of ['src', 'example', 'bench', 'cluster-kit']) {
    cpSync(path.join(DIST, dir), path.join(root, 'dist', dir), {recursive: true});
  }
  symlinkSync(path.resolve(DIST, '..', 'node_modules'), path.join(root, 'node_modules'), 'dir');
  return {
    script: relative => path.join(root, 'dist', relative),
    remove: () => rmSync(root, {recursive: true, force: true}),
  };
}
