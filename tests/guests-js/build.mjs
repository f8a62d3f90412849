// Builds a JavaScript edge function into a wasi:http/proxy component:
// `node build.mjs SRC_DIR OUT.wasm`, with this script copied beside the node_modules that hold
// the pinned componentize-js (installed from SRC_DIR's package-lock.json); node resolves the
// import from the script's own directory.
//
// componentize-js needs the WIT of the world's dependencies. They come from the jco that
// componentize-js installs, at the WASI 0.2 patch version its engine was built against (0.2.10
// for componentize-js 0.23.0, read from the engine below): jco ships the 0.2.12 text, and
// within 0.2 the packages differ only in version annotations, so the copy is renamed.
import { componentize } from "@bytecodealliance/componentize-js";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const [src, out] = process.argv.slice(2).map((p) => resolve(p));
if (!src || !out) {
  console.error("usage: node build.mjs SRC_DIR OUT.wasm");
  process.exit(2);
}
const modules = join(dirname(fileURLToPath(import.meta.url)), "node_modules", "@bytecodealliance");
const cjsDir = join(modules, "componentize-js");
const engine = readFileSync(join(cjsDir, "lib", "starlingmonkey_embedding.wasm")).toString("latin1");
const version = engine.match(/wasi:http\/incoming-handler@(0\.2\.\d+)/)?.[1];
if (!version) throw new Error("cannot tell which WASI 0.2 version the componentize-js engine imports");

// npm hoists jco beside componentize-js unless two versions clash.
const jcoDir = [join(cjsDir, "node_modules", "@bytecodealliance", "jco"), join(modules, "jco")].find(existsSync);
if (!jcoDir) throw new Error(`no @bytecodealliance/jco under ${modules}`);
const witSrc = join(jcoDir, "lib", "wit", "builtin", "0.2.12");
const wit = join(dirname(out), "guests-js-wit");
rmSync(wit, { recursive: true, force: true });
mkdirSync(join(wit, "deps"), { recursive: true });
for (const pkg of ["cli", "clocks", "filesystem", "http", "io", "random", "sockets"]) {
  const dir = join(wit, "deps", pkg);
  cpSync(join(witSrc, `wasi-${pkg}`), dir, { recursive: true });
  for (const f of readdirSync(dir)) {
    writeFileSync(join(dir, f), readFileSync(join(dir, f), "utf8").replaceAll("@0.2.12", `@${version}`));
  }
}
const world = readFileSync(join(src, "wit", "world.wit"), "utf8").replaceAll("@0.2.10", `@${version}`);
writeFileSync(join(wit, "world.wit"), world);

const { component } = await componentize({
  sourcePath: join(src, "hello.js"),
  witPath: wit,
  worldName: "edge-function",
});
writeFileSync(out, component);
console.error(`built ${out} (${component.length} bytes, WASI ${version})`);
