// The page is built into dist/ and committed; tests/unit/web/test_build.py rebuilds it and
// compares. Hashed asset names change only with their content.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  logLevel: "warn",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
});
