#!/usr/bin/env node
/*
 * Compiles the settlement contracts with the pinned solcjs from node_modules and writes one JSON
 * artifact per contract next to the sources.
 *
 * Invariants:
 * - Reproducible: the same sources and the same pinned compiler give the same artifact bytes on
 *   any machine (fixed settings, metadata bytecodeHash "none", sorted keys, "\n" line ends).
 * - The compiler in node_modules must be the exact version package.json pins; anything else is
 *   refused rather than silently producing different bytecode.
 * - Nothing is downloaded: solcjs ships its compiler (soljson.js) inside the npm package.
 *
 * Usage:
 *   node scripts/compile_contracts.js                 write the artifacts
 *   node scripts/compile_contracts.js --out-dir DIR   write them to DIR instead (tests compare)
 *   node scripts/compile_contracts.js --check         exit 1 if the committed artifacts differ
 */
'use strict';

const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const CONTRACTS_DIR = path.join(ROOT, 'src', 'asyncdex', 'settlement', 'contracts');
const CONTRACTS = ['Settlement', 'CommitteeSettlement', 'TestToken'];

// py-evm in eth-tester 0.13 runs Prague, anvil defaults to Prague; "cancun" is the newest
// target both execute and avoids Prague-only opcodes we do not need.
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'cancun',
  metadata: { bytecodeHash: 'none' },
  outputSelection: {
    '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object', 'metadata'] },
  },
};

function pinnedSolc() {
  const wanted = require(path.join(ROOT, 'package.json')).devDependencies.solc;
  const installed = require('solc/package.json').version;
  if (installed !== wanted) {
    throw new Error(`solc ${installed} is installed but package.json pins ${wanted}; run npm ci`);
  }
  return require('solc');
}

function sortedKeys(value) {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value).sort().map((key) => [key, sortedKeys(value[key])]),
    );
  }
  return value;
}

function compileAll() {
  const solc = pinnedSolc();
  const sources = {};
  for (const name of CONTRACTS) {
    const file = `${name}.sol`;
    sources[file] = { content: fs.readFileSync(path.join(CONTRACTS_DIR, file), 'utf8') };
  }
  const input = { language: 'Solidity', sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const problem of output.errors || []) console.error(problem.formattedMessage);
  if (errors.length > 0) throw new Error(`${errors.length} compilation error(s)`);

  const artifacts = {};
  for (const name of CONTRACTS) {
    const file = `${name}.sol`;
    const compiled = output.contracts[file][name];
    const metadata = JSON.parse(compiled.metadata);
    const artifact = {
      contractName: name,
      sourceName: file,
      sourceKeccak256: metadata.sources[file].keccak256,
      compiler: { name: 'solc', version: solc.version() },
      settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion,
        metadata: SETTINGS.metadata },
      abi: compiled.abi,
      bytecode: `0x${compiled.evm.bytecode.object}`,
      deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
    };
    artifacts[`${name}.json`] = `${JSON.stringify(sortedKeys(artifact), null, 2)}\n`;
  }
  return artifacts;
}

function main(argv) {
  const artifacts = compileAll();
  if (argv.includes('--check')) {
    const stale = Object.keys(artifacts).filter((file) => {
      const target = path.join(CONTRACTS_DIR, file);
      return !fs.existsSync(target) || fs.readFileSync(target, 'utf8') !== artifacts[file];
    });
    if (stale.length > 0) {
      console.error(`stale artifacts: ${stale.join(', ')}; run node scripts/compile_contracts.js`);
      return 1;
    }
    return 0;
  }
  const outIndex = argv.indexOf('--out-dir');
  const outDir = outIndex >= 0 ? path.resolve(argv[outIndex + 1]) : CONTRACTS_DIR;
  fs.mkdirSync(outDir, { recursive: true });
  for (const [file, text] of Object.entries(artifacts)) {
    fs.writeFileSync(path.join(outDir, file), text);
    console.log(`wrote ${path.relative(ROOT, path.join(outDir, file))}`);
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
