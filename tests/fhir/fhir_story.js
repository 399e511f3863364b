// A referral's whole story through the FHIR API, as two clinics' EMRs would drive it with a
// FHIR client (fhir-kit-client): the referrer submits a transaction Bundle (and again: nothing
// new), the receiver finds its Task, accepts it, asks a question the referrer answers, starts
// and completes it; a refused move comes back as an OperationOutcome with scheduling's reason;
// searches page with _count=1 to the end. Every resource and Bundle the API returns is checked
// against the FHIR R4 JSON schema (fhir_schema.js): any error fails the run.
//
// Environment: FHIR_BASE (http://127.0.0.1:PORT/fhir/r4); REFERRER_ID, REFERRER_SECRET,
// REFERRER_CLINIC; RECEIVER_ID, RECEIVER_SECRET, RECEIVER_CLINIC; STORY_REF (the referral's
// ref, unique per run); STORY_DEADLINE_MS (how long to wait for the network, 180000).
// Exit 0 when the story ran as it should; 1 with what went wrong.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Client } from 'fhir-kit-client';
import { check } from './fhir_schema.js';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env('FHIR_BASE');
const REF = env('STORY_REF', `FHIR-STORY-${Date.now()}`);
const DEADLINE_MS = Number(env('STORY_DEADLINE_MS', '180000'));
const referrer = { id: env('REFERRER_ID'), secret: env('REFERRER_SECRET'), clinic: env('REFERRER_CLINIC') };
const receiver = { id: env('RECEIVER_ID'), secret: env('RECEIVER_SECRET'), clinic: env('RECEIVER_CLINIC') };
let checked = 0;

function step(what) {
  console.log(`-- ${what}`);
}

// Checks doc against the schema; throws with every error.
function valid(doc, what) {
  const errs = check(doc, what);
  checked++;
  if (errs.length)
    throw new Error(`${what}: not valid FHIR R4 (JSON schema):\n  ${errs.join('\n  ')}\n${JSON.stringify(doc).slice(0, 3000)}`);
  return doc;
}

// The status of an answer of fhir-kit-client (its Response rides along, hidden).
const statusOf = (res) => Client.httpFor(res).response?.status;

// Runs a call of the client: its answer checked; a refusal's OperationOutcome checked too and
// rethrown with its status and body.
async function call(what, fn) {
  try {
    const res = await fn();
    if (res && Object.keys(res).length) valid(res, what);
    return res;
  } catch (e) {
    if (e.response) {
      if (e.response.data && typeof e.response.data === 'object') valid(e.response.data, `${what} (HTTP ${e.response.status})`);
      const err = new Error(`${what}: HTTP ${e.response.status}: ${JSON.stringify(e.response.data).slice(0, 2000)}`);
      err.status = e.response.status;
      err.data = e.response.data;
      throw err;
    }
    throw e;
  }
}

// A call that must be refused with status: its OperationOutcome (checked).
async function refused(what, status, fn) {
  try {
    await call(what, fn);
  } catch (e) {
    if (e.status !== status) throw e;
    assert.equal(e.data.resourceType, 'OperationOutcome', `${what}: not an OperationOutcome`);
    return e.data;
  }
  throw new Error(`${what}: was not refused (expected HTTP ${status})`);
}

// Polls probe() (async) until it gives something true, at most DEADLINE_MS.
async function until(what, probe) {
  const end = Date.now() + DEADLINE_MS;
  for (let wait = 50; ; wait = Math.min(wait * 2, 500)) {
    const got = await probe();
    if (got) return got;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, wait));
  }
}

// A token by client credentials: HTTP Basic (basic) or client_id/client_secret in the form.
async function token(c, basic) {
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  const headers = { 'Content-Type': 'application/x-www-form-urlencoded' };
  if (basic) headers.Authorization = `Basic ${Buffer.from(`${c.id}:${c.secret}`).toString('base64')}`;
  else form.set('client_id', c.id), form.set('client_secret', c.secret);
  const r = await fetch(`${BASE}/token`, { method: 'POST', headers, body: form.toString() });
  const body = await r.json();
  assert.equal(r.status, 200, `token for ${c.id}: ${JSON.stringify(body)}`);
  assert.equal(body.token_type.toLowerCase(), 'bearer');
  assert.ok(body.expires_in > 0 && body.expires_in <= 3600, `expires_in ${body.expires_in}`);
  assert.match(body.access_token, /^[A-Za-z0-9_-]{43}$/);
  return body.access_token;
}

const matches = (b) => (b.entry || []).filter((e) => e.search?.mode === 'match').map((e) => e.resource);
const includes = (b) => (b.entry || []).filter((e) => e.search?.mode === 'include').map((e) => e.resource);
const ext = (r, url) => (r.extension || []).find((x) => x.url === url);

// Follows Bundle.link next from the first page to the end: every match, each page checked.
async function allPages(client, what, resourceType, searchParams) {
  let page = await call(`${what} page 1`, () => client.search({ resourceType, searchParams }));
  const total = page.total;
  const got = [...matches(page)];
  let pages = 1;
  for (;;) {
    const next = (page.link || []).find((l) => l.relation === 'next');
    if (!next) break;
    assert.ok(pages < 100, `${what}: more than 100 pages`);
    page = await call(`${what} page ${pages + 1}`, () => client.nextPage({ bundle: page }));
    assert.ok(page, `${what}: the next link gave nothing`);
    assert.equal(page.total, total, `${what}: the total changed between pages`);
    got.push(...matches(page));
    pages++;
  }
  return { got, pages, total };
}

async function main() {
  const bundle = JSON.parse(readFileSync(new URL('./ankle-sprain.bundle.json', import.meta.url), 'utf8'));
  const sr0 = bundle.entry[0];
  sr0.resource.identifier[0].value = REF;
  sr0.request.ifNoneExist = `identifier=urn:handoff:ref|${REF}`;
  valid(bundle, 'the submitted Bundle');

  step('tokens: the referrer by HTTP Basic, the receiver by the form');
  const rt = await token(referrer, true);
  const vt = await token(receiver, false);
  const emrA = new Client({ baseUrl: BASE, bearerToken: rt });
  const emrB = new Client({ baseUrl: BASE, bearerToken: vt });

  step('the CapabilityStatement');
  const cap = await call('GET metadata', () => emrA.capabilityStatement());
  assert.equal(cap.resourceType, 'CapabilityStatement');
  assert.equal(cap.fhirVersion, '4.0.1');

  step('the referrer submits the referral (transaction Bundle)');
  const first = await call('POST the Bundle', () => emrA.transaction({ body: bundle }));
  assert.equal(statusOf(first), 201, 'the first submission: 201 Created');
  assert.equal(first.type, 'transaction-response');
  assert.equal(first.entry.length, bundle.entry.length, 'one response entry per request entry');
  const loc = first.entry[0].response.location;
  const m = /^ServiceRequest\/(R-[A-Za-z0-9]{16})(\/_history\/\d+)?$/.exec(loc);
  assert.ok(m, `the ServiceRequest's location: ${loc}`);
  const rid = m[1];
  assert.match(first.entry[0].response.status, /^201/);
  assert.match(first.entry[1].response.location, new RegExp(`^Patient/${rid}-patient`));
  console.log(`   referral ${rid}`);

  step('the same Bundle again: the same ServiceRequest, 200, nothing new');
  const again = await call('POST the Bundle again', () => emrA.transaction({ body: bundle }));
  assert.equal(statusOf(again), 200, 'a resubmission: 200');
  assert.equal(again.entry[0].response.location.split('/_history')[0], `ServiceRequest/${rid}`);
  assert.match(again.entry[0].response.status, /^200/);
  const byRef = await call('search ServiceRequest by ref', () =>
    emrA.search({ resourceType: 'ServiceRequest', searchParams: { identifier: `urn:handoff:ref|${REF}` } }));
  assert.equal(byRef.total, 1, 'one ServiceRequest with the ref');
  assert.equal(matches(byRef)[0].id, rid);

  step('the referrer reads its ServiceRequest, Patient and requester');
  const sr = await call('read ServiceRequest', () => emrA.read({ resourceType: 'ServiceRequest', id: rid }));
  assert.ok(sr.identifier.some((i) => i.system === 'urn:handoff:referral-id' && i.value === rid));
  assert.ok(sr.identifier.some((i) => i.system === 'urn:handoff:ref' && i.value === REF));
  assert.equal(sr.subject.reference, `Patient/${rid}-patient`);
  const pat = await call('read Patient', () => emrA.read({ resourceType: 'Patient', id: `${rid}-patient` }));
  assert.equal(pat.birthDate, bundle.entry[1].resource.birthDate);
  assert.equal(pat.name[0].family, bundle.entry[1].resource.name[0].family);
  await call('read PractitionerRole', () => emrA.read({ resourceType: 'PractitionerRole', id: `${rid}-referrer` }));
  await call('read Practitioner', () => emrA.read({ resourceType: 'Practitioner', id: `${rid}-referrer` }));

  step(`the receiver finds its Task (owner ${receiver.clinic}, ready)`);
  const task = await until('the Task at the receiver', async () => {
    const b = await call('search Task owner/ready', () =>
      emrB.search({ resourceType: 'Task', searchParams: { owner: `Organization/${receiver.clinic}`, status: 'ready' } }));
    return matches(b).find((t) => (t.basedOn || []).some((r) => r.reference === `ServiceRequest/${rid}`));
  });
  assert.equal(task.id, `${rid}-physiotherapy`);
  assert.equal(task.partOf[0].reference, `Task/${rid}`);
  assert.equal(task.owner.reference, `Organization/${receiver.clinic}`);

  step('the receiver reads it with _include=Task:based-on');
  const withSr = await call('search Task _id + _include', () =>
    emrB.search({ resourceType: 'Task', searchParams: { _id: task.id, _include: 'Task:based-on' } }));
  assert.equal(withSr.total, 1);
  assert.equal(matches(withSr)[0].id, task.id);
  const inc = includes(withSr).find((r) => r.resourceType === 'ServiceRequest');
  assert.ok(inc, 'the ServiceRequest is included');
  assert.equal(inc.id, rid);
  const direct = await call('read Task', () => emrB.read({ resourceType: 'Task', id: task.id }));
  assert.equal(direct.status, 'ready');
  const appt = await call('search Appointment', () =>
    emrB.search({ resourceType: 'Appointment', searchParams: { 'based-on': `ServiceRequest/${rid}` } }));
  assert.equal(appt.total, 1, 'the booking as an Appointment');
  await call('read Organization', () => emrB.read({ resourceType: 'Organization', id: receiver.clinic }));

  step('the receiver accepts (PATCH: replace /status accepted)');
  const accepted = await call('PATCH accept', () =>
    emrB.patch({ resourceType: 'Task', id: task.id, jsonPatch: [{ op: 'replace', path: '/status', value: 'accepted' }] }));
  assert.equal(accepted.status, 'accepted');
  assert.equal(ext(accepted, 'urn:handoff:ext:event')?.valueCode, 'accept');

  step('the receiver asks a question (POST Communication)');
  const question = await call('POST Communication question', () =>
    emrB.create({
      resourceType: 'Communication',
      body: {
        resourceType: 'Communication',
        status: 'completed',
        category: [{ coding: [{ system: 'urn:handoff:post-kind', code: 'question' }] }],
        basedOn: [{ reference: `ServiceRequest/${rid}` }],
        payload: [{ contentString: 'Is the patient cleared for hopping drills?' }],
      },
    }));
  assert.match(question.id, /^P-/);
  assert.equal(question.category[0].coding[0].code, 'question');

  step('the referrer finds the question and replies');
  const asked = await until('the question at the referrer', async () => {
    const b = await call('search Communication based-on', () =>
      emrA.search({ resourceType: 'Communication', searchParams: { 'based-on': `ServiceRequest/${rid}` } }));
    return matches(b).find((c) => c.id === question.id);
  });
  assert.equal(asked.payload[0].contentString, 'Is the patient cleared for hopping drills?');
  const reply = await call('POST Communication reply', () =>
    emrA.create({
      resourceType: 'Communication',
      body: {
        resourceType: 'Communication',
        status: 'completed',
        category: [{ coding: [{ system: 'urn:handoff:post-kind', code: 'reply' }] }],
        basedOn: [{ reference: `ServiceRequest/${rid}` }],
        inResponseTo: [{ reference: `Communication/${question.id}` }],
        payload: [{ contentString: 'Yes, from week two on.' }],
      },
    }));
  assert.equal(reply.inResponseTo[0].reference, `Communication/${question.id}`);
  await until('the reply at the receiver', async () => {
    const b = await call('search Communication (receiver)', () =>
      emrB.search({ resourceType: 'Communication', searchParams: { 'based-on': `ServiceRequest/${rid}` } }));
    return matches(b).some((c) => c.id === reply.id);
  });

  step('the receiver starts (PUT in-progress)');
  const cur = await call('read Task before start', () => emrB.read({ resourceType: 'Task', id: task.id }));
  const started = await call('PUT start', () =>
    emrB.update({ resourceType: 'Task', id: task.id, body: { ...cur, status: 'in-progress' } }));
  assert.equal(started.status, 'in-progress');

  step('the receiver completes (PATCH completed + output summary)');
  const summary = 'Six sessions; pain-free on stairs; back to futsal with a home program.';
  const done = await call('PATCH complete', () =>
    emrB.patch({
      resourceType: 'Task',
      id: task.id,
      jsonPatch: [
        { op: 'replace', path: '/status', value: 'completed' },
        { op: 'add', path: '/output', value: [{ type: { text: 'summary' }, valueString: summary }] },
      ],
    }));
  assert.equal(done.status, 'completed');
  assert.equal(done.output[0].valueString, summary);

  step('a refused move: accept after completion gives scheduling\'s reason');
  const oo = await refused('PATCH accept after completion', 409, () =>
    emrB.patch({ resourceType: 'Task', id: task.id, jsonPatch: [{ op: 'replace', path: '/status', value: 'accepted' }] }));
  assert.ok(oo.issue[0].diagnostics && oo.issue[0].diagnostics.length > 5, 'the reason is said');
  console.log(`   refused: ${oo.issue[0].diagnostics}`);
  const still = await call('read Task after the refusal', () => emrB.read({ resourceType: 'Task', id: task.id }));
  assert.equal(still.status, 'completed', 'the refusal changed nothing');

  step('the referrer sees it completed');
  await until('the referral completed at the referrer', async () => {
    const s = await call('read ServiceRequest (end)', () => emrA.read({ resourceType: 'ServiceRequest', id: rid }));
    return s.status === 'completed';
  });
  const child = await call('read child Task (referrer)', () => emrA.read({ resourceType: 'Task', id: task.id }));
  assert.equal(child.status, 'completed');

  step('paging with _count=1 to the end');
  for (const [who, client, type, params] of [
    ['referrer', emrA, 'Task', { 'based-on': `ServiceRequest/${rid}` }],
    ['referrer', emrA, 'Communication', { 'based-on': `ServiceRequest/${rid}` }],
    ['receiver', emrB, 'Communication', { 'based-on': `ServiceRequest/${rid}` }],
  ]) {
    const { got, pages, total } = await allPages(client, `${who} ${type}`, type, { ...params, _count: 1 });
    assert.ok(total >= 2, `${who} ${type}: at least two to page through (${total})`);
    assert.equal(got.length, total, `${who} ${type}: every match once across the pages`);
    assert.equal(pages, total, `${who} ${type}: one page per match`);
    assert.equal(new Set(got.map((r) => r.id)).size, total, `${who} ${type}: no match twice`);
    console.log(`   ${who} ${type}: ${total} in ${pages} pages`);
  }
  console.log(`the story ran: referral ${rid}, ${checked} answers valid FHIR R4`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`FAILED: ${e.stack || e}`);
    process.exit(1);
  },
);
