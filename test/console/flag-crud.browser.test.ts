/**
 * Flags end to end in the console (issue 18, item 1), in headless Chromium against the real server, the real console
 * build and a real SDK: a flag created from the flag list with typed variants and given its first targeting without
 * typing JSON; an invalid create shows the API's own message next to the field and creates nothing; the definition
 * edited with If-Match (a concurrent edit is refused and says so); archive (refused, naming the flag that requires it,
 * when one does) and un-archive; actions hidden from a
 * role that cannot take them.
 */
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, signedInPage } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';

let srv: TestServer;
let browser: Browser;
let page: Page;
let errors: string[] = [];
let sdk: AviaryClient;

const FLAG = 'checkout-banner';

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer();
  // The list is a table once one flag exists (the sign-in helper waits for it).
  expect((await api(srv).post('/api/v1/flags', { key: 'pricing', kind: 'boolean' })).status).toBe(201);
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
  await sdk.ready();
  browser = await launchBrowser();
  ({ page, errors } = await signedInPage(browser, srv));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await sdk?.close();
  await srv?.close();
});

/** The text of the element that describes `field` (its API error), or null when nothing does. */
async function fieldError(field: Locator): Promise<string | null> {
  const id = await field.getAttribute('aria-describedby');
  return id ? page.locator(`[id="${id}"]`).textContent() : null;
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('flags end to end in the console', () => {
  it('creating a flag and its first targeting without typing JSON', async () => {
    await page.goto(srv.url + '/');
    await page.getByRole('button', { name: 'New flag' }).click();
    const dialog = page.getByRole('dialog', { name: 'New flag' });
    await dialog.getByLabel('Key', { exact: true }).fill(FLAG);
    await dialog.getByLabel('Kind').selectOption('string');
    const variants: Array<[string, string, string]> = [
      ['control', 'Buy now', 'what runs today'],
      ['urgent', 'Only 3 left!', ''],
      ['calm', 'Take your time', 'the gentle one'],
    ];
    for (const [i, [key, value, description]] of variants.entries()) {
      if (i > 0) await dialog.getByRole('button', { name: 'Add variant' }).click();
      await dialog.getByRole('textbox', { name: `Variant ${i + 1} key` }).fill(key);
      await dialog.getByRole('textbox', { name: `Variant ${i + 1} value` }).fill(value);
      if (description) await dialog.getByRole('textbox', { name: `Variant ${i + 1} description` }).fill(description);
    }
    await dialog.getByRole('textbox', { name: 'Description', exact: true }).fill('The banner above the checkout button');
    await dialog.getByRole('textbox', { name: 'Tags (comma-separated)' }).fill('checkout, growth');
    await dialog.getByRole('button', { name: 'Create flag' }).click();

    // On success, the new flag's page.
    await page.getByRole('heading', { name: `${FLAG} string` }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/flags/${FLAG}`);
    const created = (await api(srv).get(`/api/v1/flags/${FLAG}`)).body;
    expect(created).toMatchObject({
      kind: 'string',
      description: 'The banner above the checkout button',
      tags: ['checkout', 'growth'],
      archived: false,
      variants: [
        { key: 'control', value: 'Buy now', description: 'what runs today' },
        { key: 'urgent', value: 'Only 3 left!' },
        { key: 'calm', value: 'Take your time', description: 'the gentle one' },
      ],
    });
    expect(created.variants[1]).not.toHaveProperty('description');

    // Its first targeting, with the existing controls: turn it on, then a percentage rollout for everyone.
    await page.getByRole('button', { name: `Turn on ${FLAG} in production` }).click();
    const turnOn = page.getByRole('dialog', { name: `Turn on ${FLAG} in production` });
    await turnOn.getByRole('button', { name: 'Turn on flag' }).click();
    await turnOn.getByRole('button', { name: 'Close' }).click();
    const fallthrough = page.getByRole('group', { name: 'Everyone else (fallthrough)' });
    await fallthrough.getByRole('radio', { name: 'percentage rollout' }).check();
    for (const [variant, percent] of [
      ['control', '20'],
      ['urgent', '30'],
      ['calm', '50'],
    ])
      await fallthrough.getByRole('spinbutton', { name: `Everyone else (fallthrough): percent for ${variant}` }).fill(percent!);
    await page.getByRole('button', { name: 'Save targeting' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();

    const state = (await api(srv).get(`/api/v1/flags/${FLAG}/environments/production`)).body;
    expect(state).toMatchObject({
      enabled: true,
      fallthrough: {
        rollout: {
          weights: [
            { variant: 'control', percent: 20 },
            { variant: 'urgent', percent: 30 },
            { variant: 'calm', percent: 50 },
          ],
        },
      },
    });
    // A real SDK serves what was set: each typed value, in about the shares given.
    await until(() => sdk.variationDetail(FLAG, { key: 'probe' }, 'default').errorCode !== 'FLAG_NOT_FOUND', 'the SDK to see the flag');
    await until(() => sdk.variationDetail(FLAG, { key: 'probe' }, 'default').reason.inRollout === true, 'the SDK to see the rollout');
    const counts: Record<string, number> = {};
    const values = new Map(variants.map(([k, v]) => [k, v]));
    for (let i = 0; i < 4000; i++) {
      const d = sdk.variationDetail(FLAG, { key: `user-${i}` }, 'default');
      expect(d.value).toBe(values.get(d.variant!));
      counts[d.variant!] = (counts[d.variant!] ?? 0) + 1;
    }
    expect(Math.abs(counts.control! / 4000 - 0.2)).toBeLessThan(0.03);
    expect(Math.abs(counts.urgent! / 4000 - 0.3)).toBeLessThan(0.03);
    expect(Math.abs(counts.calm! / 4000 - 0.5)).toBeLessThan(0.03);
  });

  it('creates number and boolean flags with typed values: numbers as numbers, the boolean preset on/off', async () => {
    for (const [key, kind] of [
      ['max-items', 'number'],
      ['dark-mode', 'boolean'],
    ] as const) {
      await page.goto(srv.url + '/');
      await page.getByRole('button', { name: 'New flag' }).click();
      const dialog = page.getByRole('dialog', { name: 'New flag' });
      await dialog.getByLabel('Key', { exact: true }).fill(key);
      await dialog.getByLabel('Kind').selectOption(kind);
      if (kind === 'number') {
        await dialog.getByRole('textbox', { name: 'Variant 1 key' }).fill('small');
        await dialog.getByRole('spinbutton', { name: 'Variant 1 value' }).fill('3');
        await dialog.getByRole('button', { name: 'Add variant' }).click();
        await dialog.getByRole('textbox', { name: 'Variant 2 key' }).fill('large');
        await dialog.getByRole('spinbutton', { name: 'Variant 2 value' }).fill('12.5');
      } else {
        expect(await dialog.getByRole('combobox', { name: 'Variant 1 value' }).inputValue()).toBe('true');
        expect(await dialog.getByRole('combobox', { name: 'Variant 2 value' }).inputValue()).toBe('false');
      }
      await dialog.getByRole('button', { name: 'Create flag' }).click();
      await page.getByRole('heading', { name: `${key} ${kind}` }).waitFor();
    }
    expect((await api(srv).get('/api/v1/flags/max-items')).body.variants).toEqual([
      { key: 'small', value: 3 },
      { key: 'large', value: 12.5 },
    ]);
    expect((await api(srv).get('/api/v1/flags/dark-mode')).body.variants).toEqual([
      { key: 'on', value: true },
      { key: 'off', value: false },
    ]);
  });

  it("an invalid create shows the API's message next to the field and creates nothing", async () => {
    const before = (await api(srv).get('/api/v1/flags?archived=all')).body.flags.length;
    await page.goto(srv.url + '/');
    await page.getByRole('button', { name: 'New flag' }).click();
    const dialog = page.getByRole('dialog', { name: 'New flag' });
    // A json variant is checked as it is typed, before anything is sent.
    await dialog.getByLabel('Kind').selectOption('json');
    const json = dialog.getByRole('textbox', { name: 'Variant 1 value' });
    await json.fill('{"limit": ');
    expect(await fieldError(json)).toMatch(/^not valid JSON/);
    expect(await dialog.getByRole('button', { name: 'Create flag' }).isDisabled()).toBe(true);
    await json.fill('{"limit": 3}');
    expect(await json.getAttribute('aria-invalid')).toBeNull();

    // What the API says about the same body, field by field.
    const key = dialog.getByLabel('Key', { exact: true });
    await key.fill('Checkout Banner');
    await dialog.getByRole('textbox', { name: 'Variant 1 key' }).fill('three');
    await dialog.getByRole('textbox', { name: 'Description', exact: true }).fill('x'.repeat(4097));
    const refused = await api(srv).post('/api/v1/flags', {
      key: 'Checkout Banner',
      kind: 'json',
      variants: [{ key: 'three', value: { limit: 3 } }],
      description: 'x'.repeat(4097),
    });
    expect(refused.status).toBe(400);
    const byPath = new Map<string, string[]>();
    for (const e of refused.body.errors as Array<{ path: string; message: string }>) byPath.set(e.path, [...(byPath.get(e.path) ?? []), e.message]);
    expect([...byPath.keys()].sort()).toEqual(['/description', '/key']);

    await dialog.getByRole('button', { name: 'Create flag' }).click();
    await until(async () => (await key.getAttribute('aria-invalid')) === 'true', 'the key marked invalid');
    expect(await fieldError(key)).toBe(byPath.get('/key')!.join('; '));
    expect(await fieldError(dialog.getByRole('textbox', { name: 'Description', exact: true }))).toBe(byPath.get('/description')!.join('; '));
    expect(await dialog.getByRole('alert').textContent()).toContain(refused.body.title);
    // Nothing was created, and the dialog is still there to fix it.
    expect((await api(srv).get('/api/v1/flags?archived=all')).body.flags.length).toBe(before);
    expect(new URL(page.url()).pathname).toBe('/');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
  });

  it('edits the definition with If-Match: typed values, an unused variant removed, the API refusing to drop a served one', async () => {
    await page.goto(srv.url + `/flags/${FLAG}`);
    await page.getByRole('button', { name: 'Edit definition' }).click();
    const form = page.getByRole('form', { name: `Definition of ${FLAG}` });
    await form.getByRole('textbox', { name: 'Variant 2 value' }).fill('Only 2 left!');
    await form.getByRole('button', { name: 'Add variant' }).click();
    await form.getByRole('textbox', { name: 'Variant 4 key' }).fill('loud');
    await form.getByRole('textbox', { name: 'Variant 4 value' }).fill('BUY NOW');
    await form.getByRole('textbox', { name: 'Description', exact: true }).fill('The banner above the pay button');
    await form.getByRole('textbox', { name: 'Tags (comma-separated)' }).fill('checkout, growth, q4');
    const revision = (await api(srv).get(`/api/v1/flags/${FLAG}`)).body.revision as number;
    await form.getByRole('button', { name: 'Save definition' }).click();
    await form.waitFor({ state: 'detached' });
    let flag = (await api(srv).get(`/api/v1/flags/${FLAG}`)).body;
    expect(flag.revision).toBe(revision + 1);
    expect(flag).toMatchObject({ description: 'The banner above the pay button', tags: ['checkout', 'growth', 'q4'] });
    expect(flag.variants.map((v: { key: string; value: unknown }) => [v.key, v.value])).toEqual([
      ['control', 'Buy now'],
      ['urgent', 'Only 2 left!'],
      ['calm', 'Take your time'],
      ['loud', 'BUY NOW'],
    ]);
    await page.getByRole('row', { name: /loud/ }).waitFor();

    // Removing a variant the production rollout serves: the API refuses (409) and the console says why.
    await page.getByRole('button', { name: 'Edit definition' }).click();
    await form.getByRole('button', { name: 'Remove variant 3' }).click();
    await form.getByRole('button', { name: 'Save definition' }).click();
    const conflict = form.getByRole('alert');
    await conflict.waitFor();
    expect(await conflict.textContent()).toContain(`The new variants would break the state of flag "${FLAG}"`);
    expect(await conflict.textContent()).toContain('/environments/production/state');
    expect((await api(srv).get(`/api/v1/flags/${FLAG}`)).body.revision).toBe(flag.revision);
    await form.getByRole('button', { name: 'Cancel' }).click();

    // An unused one goes.
    await page.getByRole('button', { name: 'Edit definition' }).click();
    await form.getByRole('button', { name: 'Remove variant 4' }).click();
    await form.getByRole('button', { name: 'Save definition' }).click();
    await form.waitFor({ state: 'detached' });
    flag = (await api(srv).get(`/api/v1/flags/${FLAG}`)).body;
    expect(flag.variants.map((v: { key: string }) => v.key)).toEqual(['control', 'urgent', 'calm']);
  });

  it('a concurrent edit is refused and says so; the latest can be loaded and edited', async () => {
    await page.goto(srv.url + `/flags/${FLAG}`);
    await page.getByRole('button', { name: 'Edit definition' }).click();
    const form = page.getByRole('form', { name: `Definition of ${FLAG}` });
    const description = form.getByRole('textbox', { name: 'Description', exact: true });
    await description.fill('mine');
    // Meanwhile, someone changes it through the API.
    const other = await api(srv).patch(`/api/v1/flags/${FLAG}`, { description: 'theirs' });
    expect(other.status).toBe(200);
    await form.getByRole('button', { name: 'Save definition' }).click();
    const alert = form.getByRole('alert').filter({ hasText: 'Not saved' });
    await alert.waitFor();
    expect(await alert.textContent()).toContain(`changed elsewhere since you opened it (it is now r${other.body.revision})`);
    expect((await api(srv).get(`/api/v1/flags/${FLAG}`)).body.description).toBe('theirs');

    await form.getByRole('button', { name: 'Load the latest' }).click();
    await until(async () => (await description.inputValue()) === 'theirs', 'the latest description in the form');
    await description.fill('theirs, and mine');
    await form.getByRole('button', { name: 'Save definition' }).click();
    await form.waitFor({ state: 'detached' });
    expect((await api(srv).get(`/api/v1/flags/${FLAG}`)).body).toMatchObject({ description: 'theirs, and mine', revision: other.body.revision + 1 });
  });

  it('archives and un-archives: SDKs stop and start seeing the flag, the list shows it only with "Show archived"', async () => {
    await page.goto(srv.url + `/flags/${FLAG}`);
    await page.getByRole('button', { name: 'Archive flag' }).click();
    const dialog = page.getByRole('dialog', { name: `Archive ${FLAG}` });
    await dialog.getByRole('button', { name: 'Archive', exact: true }).click();
    await page
      .getByRole('note')
      .filter({ hasText: `${FLAG} is archived` })
      .waitFor();
    expect((await api(srv).get(`/api/v1/flags/${FLAG}`)).body.archived).toBe(true);
    await until(() => sdk.variationDetail(FLAG, { key: 'user-1' }, 'default').errorCode === 'FLAG_NOT_FOUND', 'the SDK to drop the flag');

    await page.getByRole('link', { name: 'Flags', exact: true }).first().click();
    await page.getByRole('heading', { name: 'Flags', exact: true }).waitFor();
    expect(await page.locator(`tr[data-flag="${FLAG}"]`).count()).toBe(0);
    await page.getByRole('checkbox', { name: 'Show archived' }).check();
    const row = page.locator(`tr[data-flag="${FLAG}"]`);
    await row.waitFor();
    expect(await row.textContent()).toContain('archived');
    await row.getByRole('link', { name: FLAG }).click();

    await page.getByRole('button', { name: 'Un-archive flag' }).click();
    await page.getByRole('button', { name: 'Archive flag' }).waitFor();
    expect((await api(srv).get(`/api/v1/flags/${FLAG}`)).body.archived).toBe(false);
    await until(() => sdk.variationDetail(FLAG, { key: 'user-1' }, 'default').reason.kind === 'FALLTHROUGH', 'the SDK to see the flag again');
    expect(errors).toEqual([]);
  });

  it('refuses to archive a flag another flag requires, naming it, and archives nothing', async () => {
    const a = api(srv);
    expect((await a.post('/api/v1/flags', { key: 'gate', kind: 'boolean' })).status).toBe(201);
    const requires = await a.put('/api/v1/flags/pricing/environments/production', {
      enabled: true,
      offVariant: 'off',
      prerequisites: [{ flag: 'gate', variants: ['on'] }],
      targets: [],
      rules: [],
      fallthrough: { variant: 'on' },
    });
    expect(requires.status, JSON.stringify(requires.body)).toBe(200);
    const revision = (await a.get('/api/v1/flags/gate')).body.revision;
    await page.goto(srv.url + '/flags/gate');
    await page.getByRole('button', { name: 'Archive flag' }).click();
    const dialog = page.getByRole('dialog', { name: 'Archive gate' });
    await dialog.getByRole('button', { name: 'Archive', exact: true }).click();
    const alert = dialog.getByRole('alert');
    await alert.waitFor();
    expect(await alert.textContent()).toContain('Flag "gate" is required by flag "pricing"');
    expect((await a.get('/api/v1/flags/gate')).body).toMatchObject({ archived: false, revision });
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect(errors).toEqual([]);
  });

  it('shows creating, editing and archiving only to roles that may: hidden from a viewer, an oncall and an editor scoped to an environment', async () => {
    const a = api(srv);
    const tokens = {
      viewer: (await a.post('/api/v1/tokens', { kind: 'admin', role: 'viewer', name: 'looker' })).body.token,
      oncall: (await a.post('/api/v1/tokens', { kind: 'admin', role: 'oncall', name: 'pager' })).body.token,
      scoped: (await a.post('/api/v1/tokens', { kind: 'admin', role: 'editor', environments: ['staging'], name: 'stager' })).body.token,
      editor: (await a.post('/api/v1/tokens', { kind: 'admin', role: 'editor', name: 'maker' })).body.token,
    };
    for (const [who, token] of Object.entries(tokens)) {
      const { page: p, errors: theirErrors } = await signedInPage(browser, { url: srv.url, adminToken: token });
      await p.locator(`tr[data-flag="${FLAG}"]`).waitFor();
      const expected = who === 'editor' ? 1 : 0;
      expect(await p.getByRole('button', { name: 'New flag' }).count(), who).toBe(expected);
      await p.goto(srv.url + `/flags/${FLAG}`);
      await p.getByRole('heading', { name: 'Variants' }).waitFor();
      for (const name of ['Edit definition', 'Archive flag']) expect(await p.getByRole('button', { name }).count(), `${who}: ${name}`).toBe(expected);
      await p.close();
      expect(theirErrors).toEqual([]);
    }
    expect(errors).toEqual([]);
  });
});
