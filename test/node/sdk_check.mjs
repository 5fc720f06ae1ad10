// sdk_check.mjs drives the official openai npm SDK against an
// OpenAI-compatible endpoint (veil, or the fake upstream) and prints what
// the SDK made of the answers on stdout, as JSON, for Go tests to check
// (see internal/nodetest).
//
// Environment:
//   OPENAI_BASE_URL  the API base URL, e.g. http://127.0.0.1:8080/v1
//   OPENAI_API_KEY   the bearer key
//   SUPPLIER         optional; sent as the X-Supplier-ID header
//   MODE             one of:
//     chat           a chat completion; prints the response
//     stream         a streamed chat completion; prints each chunk on a line
//     stream_usage   the same with stream_options.include_usage
//     embeddings     embeddings with the SDK's default (base64) encoding;
//                    prints the response with each vector's length and
//                    first 3 values instead of the vector
//     models         lists the models; prints {"object":"list","data":[...]}
//     error          a chat completion that must fail with an APIError;
//                    prints {"status":...,"code":...,"type":...}
//     stream_tools   a streamed chat completion offering a tool, assembled
//                    by the SDK's stream helper; then the tool's result is
//                    sent back and the streamed answer assembled again;
//                    prints one line per step
//   MODEL            optional; the chat model (default gpt-4o-mini)
//   OPENAI_PACKAGE   optional; the installed SDK to drive: openai (the newest
//                    major this Node.js runs, default) or openai-v5 (the
//                    previous major, pinned)
//
// It exits non-zero, with a message on stderr, on any unexpected error.
const { default: OpenAI } = await import(process.env.OPENAI_PACKAGE || 'openai');

const MODEL = process.env.MODEL || 'gpt-4o-mini';
const EMBEDDING_MODEL = 'text-embedding-3-small';
const MESSAGES = [
  { role: 'system', content: 'You are a helpful wedding-planning assistant.' },
  {
    role: 'user',
    content: 'Suggest three questions a couple should ask a wedding florist.',
  },
];
const EMBEDDING_INPUT = [
  'Rustic barn venue with fairy lights for 120 guests',
  'Peonies and eucalyptus bridal bouquet',
];

function env(name, required = true) {
  const v = process.env[name];
  if (required && !v) {
    throw new Error(`${name} is not set`);
  }
  return v ?? '';
}

function line(value) {
  process.stdout.write(JSON.stringify(value) + '\n');
}

function newClient() {
  const supplier = env('SUPPLIER', false);
  return new OpenAI({
    baseURL: env('OPENAI_BASE_URL'),
    apiKey: env('OPENAI_API_KEY'),
    maxRetries: 0,
    timeout: 30_000,
    defaultHeaders: supplier ? { 'X-Supplier-ID': supplier } : undefined,
  });
}

function chatParams(extra = {}) {
  return { model: MODEL, messages: MESSAGES, temperature: 0, ...extra };
}

async function chat(client) {
  line(await client.chat.completions.create(chatParams()));
}

async function stream(client, includeUsage) {
  const extra = { stream: true };
  if (includeUsage) {
    extra.stream_options = { include_usage: true };
  }
  const chunks = await client.chat.completions.create(chatParams(extra));
  for await (const chunk of chunks) {
    line(chunk);
  }
}

async function embeddings(client) {
  const res = await client.embeddings.create({
    model: EMBEDDING_MODEL,
    input: EMBEDDING_INPUT,
  });
  const data = res.data.map(({ embedding, ...rest }) => ({
    ...rest,
    embedding_length: embedding.length,
    embedding_head: Array.from(embedding.slice(0, 3)),
  }));
  line({ ...res, data });
}

async function models(client) {
  const data = [];
  for await (const model of client.models.list()) {
    data.push(model);
  }
  line({ object: 'list', data });
}

async function expectError(client) {
  try {
    const res = await client.chat.completions.create(chatParams());
    throw new Error(`expected an API error, got a response: ${JSON.stringify(res)}`);
  } catch (err) {
    if (!(err instanceof OpenAI.APIError) || err.status === undefined) {
      throw err;
    }
    line({ status: err.status, code: err.code ?? null, type: err.type ?? null });
  }
}

const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'check_venue_availability',
      description: 'Check whether a wedding venue is available on a date',
      parameters: {
        type: 'object',
        properties: { venue: { type: 'string' }, date: { type: 'string' } },
        required: ['venue', 'date'],
      },
    },
  },
];

async function streamTools(client) {
  const messages = [
    { role: 'user', content: 'Is the venue Hartwell Barn available on 2027-06-12? Check venue availability.' },
  ];
  const runner = client.chat.completions.stream({
    model: MODEL,
    messages,
    tools: TOOLS,
    stream_options: { include_usage: true },
  });
  let chunks = 0;
  runner.on('chunk', () => {
    chunks++;
  });
  const first = await runner.finalChatCompletion();
  const msg = first.choices[0].message;
  const call = msg.tool_calls?.[0];
  if (!call) {
    throw new Error(`expected a tool call, got ${JSON.stringify(first)}`);
  }
  line({
    step: 'tool_call',
    chunks,
    finish_reason: first.choices[0].finish_reason,
    name: call.function.name,
    arguments: JSON.parse(call.function.arguments),
    id_present: typeof call.id === 'string' && call.id.length > 0,
    usage: first.usage,
  });
  messages.push(
    { role: 'assistant', content: msg.content, tool_calls: msg.tool_calls },
    { role: 'tool', tool_call_id: call.id, content: JSON.stringify({ available: true }) },
  );
  const second = await client.chat.completions
    .stream({ model: MODEL, messages, tools: TOOLS })
    .finalChatCompletion();
  line({
    step: 'answer',
    finish_reason: second.choices[0].finish_reason,
    content: second.choices[0].message.content,
    tool_calls: second.choices[0].message.tool_calls ?? [],
  });
}

async function main() {
  const mode = env('MODE');
  const client = newClient();
  switch (mode) {
    case 'chat':
      return chat(client);
    case 'stream':
      return stream(client, false);
    case 'stream_usage':
      return stream(client, true);
    case 'embeddings':
      return embeddings(client);
    case 'models':
      return models(client);
    case 'error':
      return expectError(client);
    case 'stream_tools':
      return streamTools(client);
    default:
      throw new Error(`unknown MODE ${JSON.stringify(mode)}`);
  }
}

try {
  await main();
} catch (err) {
  process.stderr.write(`sdk_check: ${err?.stack ?? err}\n`);
  process.exitCode = 1;
}
