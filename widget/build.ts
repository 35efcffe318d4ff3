/**
 * Builds the widget: the launcher and the panel chunk (esbuild, ESM with code
 * splitting), every file named by its content hash, their gzipped sizes
 * measured and held to the budgets. Used by `npm run build:widget` (files
 * under dist/widget, served by Parley at /widget/<hash>.js), by the widget's
 * own package build (widget/dist, for npm), and in memory by a Parley
 * running from source.
 *
 *   tsx widget/build.ts [outdir]     default: dist/widget; exits 1 over budget
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

/** Bytes, gzipped. "KB" is read as 1,000 bytes, the stricter reading. */
export const BUDGETS = { launcherGz: 5_000, totalGz: 25_000 } as const;

export interface WidgetFile {
  name: string;
  body: Uint8Array;
  /** The same bytes gzipped (level 9): what is measured, and what Parley sends to clients that accept gzip. */
  gzipped: Uint8Array;
}

export interface WidgetBuild {
  /** The launcher's file name, `<hash>.js`: what `/widget/parley-chat.js` leads to. */
  launcher: string;
  files: WidgetFile[];
  sizes: { launcherGz: number; totalGz: number; files: { name: string; bytes: number; gz: number; role: 'launcher' | 'chunk' }[] };
  /** What is over budget; empty when within. */
  overBudget: string[];
}

const HERE = fileURLToPath(new URL('.', import.meta.url));

export async function buildWidget(budgets: { launcherGz: number; totalGz: number } = BUDGETS): Promise<WidgetBuild> {
  const result = await build({
    entryPoints: [join(HERE, 'src/parley-chat.ts')],
    bundle: true,
    splitting: true,
    format: 'esm',
    target: 'es2022',
    platform: 'browser',
    minify: true,
    legalComments: 'none',
    // Content hashes only: a file's URL changes exactly when its bytes do, so it is cached for good.
    entryNames: '[hash]',
    chunkNames: '[hash]',
    outdir: '/widget',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const files = result.outputFiles.map((file) => ({
    name: basename(file.path),
    body: file.contents,
    gzipped: gzipSync(file.contents, { level: 9 }),
  }));
  // The metafile names outputs relative to the working directory; the entry point's output is the launcher.
  const entry = Object.entries(result.metafile.outputs).find(([, output]) => output.entryPoint);
  const launcher = entry ? basename(entry[0]) : '';
  if (!launcher || !files.some((f) => f.name === launcher)) throw new Error('widget build: no launcher in the output');
  const sized = files.map((f) => ({
    name: f.name,
    bytes: f.body.length,
    gz: f.gzipped.length,
    role: f.name === launcher ? ('launcher' as const) : ('chunk' as const),
  }));
  const launcherGz = sized.find((f) => f.role === 'launcher')!.gz;
  const totalGz = sized.reduce((sum, f) => sum + f.gz, 0);
  const overBudget = [
    ...(launcherGz > budgets.launcherGz ? [`launcher ${launcherGz} B gz > ${budgets.launcherGz} B`] : []),
    ...(totalGz > budgets.totalGz ? [`launcher + panel ${totalGz} B gz > ${budgets.totalGz} B`] : []),
  ];
  return { launcher, files, sizes: { launcherGz, totalGz, files: sized }, overBudget };
}

/**
 * Writes a build to `outdir` (emptied first): the hashed files, `manifest.json`
 * (the launcher's name and the sizes) and `parley-chat.js`, a one-line module
 * importing the launcher by its hash — the package's entry for bundlers.
 */
export function writeWidget(widget: WidgetBuild, outdir: string): void {
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  for (const file of widget.files) writeFileSync(join(outdir, file.name), file.body);
  writeFileSync(join(outdir, 'manifest.json'), `${JSON.stringify({ launcher: widget.launcher, budgets: BUDGETS, sizes: widget.sizes }, null, 2)}\n`);
  writeFileSync(join(outdir, 'parley-chat.js'), `export * from './${widget.launcher}';\n`);
}

export function formatSizes(widget: WidgetBuild): string {
  const kb = (bytes: number) => `${(bytes / 1000).toFixed(2)} KB`;
  const rows = widget.sizes.files.map((f) => `  ${f.name.padEnd(14)} ${f.role.padEnd(8)} ${kb(f.bytes).padStart(9)}  ${kb(f.gz).padStart(9)} gz`);
  return [
    'widget:',
    ...rows,
    `  launcher ${kb(widget.sizes.launcherGz)} gz (budget ${kb(BUDGETS.launcherGz)}), launcher + panel ${kb(widget.sizes.totalGz)} gz (budget ${kb(BUDGETS.totalGz)})`,
  ].join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outdir = resolve(process.argv[2] ?? 'dist/widget');
  const widget = await buildWidget();
  console.log(formatSizes(widget));
  if (widget.overBudget.length) {
    console.error(`widget over budget: ${widget.overBudget.join('; ')}`);
    process.exit(1);
  }
  writeWidget(widget, outdir);
  console.log(`  written to ${outdir}`);
}
