// Types of targets.mjs for the unit tests.
export declare const ROOT: string;
export interface FuzzTarget {
  source: string;
  links: string[];
  seeds: string[];
  covers: string[];
}
export declare const TARGETS: Record<string, FuzzTarget>;
export declare function fixtureBytes(path: string): Buffer;
export declare function writeSeeds(name: string, dir: string): string[];
export declare function corpusDir(name: string): string;
export declare function crashDir(name: string): string;
export declare function compilers(): { clang: string | null; replayCxx: string | null };
export declare function llvmTool(tool: string): string | null;
export declare function build(name: string, mode: 'fuzz' | 'coverage' | 'replay', outDir: string): string;
