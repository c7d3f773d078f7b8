#!/usr/bin/env node
// Runs before `npm start` and `npm test` (prestart, pretest): installs the
// locked dependencies when node_modules is missing or older than
// package-lock.json, so a fresh clone needs no other step. npm writes
// node_modules/.package-lock.json at the end of every install, so its age
// tells whether the install matches the lockfile. Plain JavaScript with no
// dependencies: it runs before anything is installed or built.
'use strict';
const {execSync} = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const modifiedAt = file => {
  try {
    return fs.statSync(path.join(root, file)).mtimeMs;
  } catch {
    return undefined;
  }
};

const installedAt = modifiedAt('node_modules/.package-lock.json');
const lockedAt = modifiedAt('package-lock.json');
if (installedAt !== undefined && (lockedAt === undefined || installedAt >= lockedAt))
  process.exit(0);

console.error(
  installedAt === undefined
    ? '> node_modules is missing: npm ci'
    : '> package-lock.json is newer than node_modules: npm ci',
);
execSync('npm ci --no-audit --no-fund', {cwd: root, stdio: 'inherit'});
