/**
 * `npm run demo`: the whole service, with the real Agent SDK, CLI and tools, answered by the repo's scripted fake
 * model instead of Anthropic's API. For trying the protocol with no API key. The answers are scripted!
 */
import { startFakeModel } from '../fake-model/server.js';

const fake = await startFakeModel({ port: Number(process.env.FAKE_MODEL_PORT ?? 0) });
process.env.ANTHROPIC_BASE_URL = fake.url;
process.env.ANTHROPIC_API_KEY = 'demo-key-for-the-fake-model';
process.env.DEMO_MODE = 'true';
process.env.DATABASE_URL ??= 'sqlite:./data/demo/chat.db';
process.env.WORKSPACE_DIR ??= './data/demo/workspaces';
process.env.AGENT_HOME_DIR ??= './data/demo/agent-home';

const port = process.env.PORT ?? '8000';
console.log(`
************************************************************************************
*  DEMO MODE: answers come from a SCRIPTED FAKE MODEL at ${fake.url.padEnd(24)}  *
*  (not Claude). The agent SDK, its CLI and the tools are real: Bash really runs.  *
*  Try messages: "hello", "/slow 30 100" (then stop), "/bash ls -la", "/recall",    *
*  "/images" with an image. Full list: fake-model/README.md                        *
*  Open http://127.0.0.1:${port.padEnd(5)}/ in a browser: the page says it is the demo.        *
*  Data: ./data/demo   API: http://127.0.0.1:${port.padEnd(5)}/api, ws path /ws/chat           *
************************************************************************************
`);

await import('../src/server.js');
