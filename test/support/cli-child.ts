// The CLI as a child process, for tests that kill it: node --import tsx test/support/cli-child.ts <args>
import { main } from "../../src/cli.js";

process.exitCode = await main(process.argv.slice(2));
