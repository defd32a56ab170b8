/**
 * The condition editor, in headless Chromium against the real server and a real SDK: a rule built without typing JSON
 * (`in` with chips, a semver comparison, a negated `endsWith`, a segment picked from the list, reordered), previewed
 * against sample attributes given by share ("plan: pro 30%, free 70%"), saved, and evaluated by the SDK as the rule
 * says; invalid values (a bad regular expression, a version that is not semver) are named next to their condition
 * with the API's messages, and the save is refused with the same messages.
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
const STATE = '/api/v1/flags/new-checkout/environments/production';

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer();
  const a = api(srv);
  expect((await a.post('/api/v1/flags', { key: 'new-checkout', kind: 'boolean' })).status).toBe(201);
  const put = await a.put(STATE, { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'off' } });
  expect(put.status, JSON.stringify(put.body)).toBe(200);
  for (const body of [
    { key: 'beta-testers', included: ['u-beta'], excluded: [], rules: [] },
    {
      key: 'dutch',
      description: 'people in NL',
      included: [],
      excluded: [],
      rules: [{ conditions: [{ attribute: 'country', op: 'in', values: ['NL'] }] }],
    },
  ]) {
    const made = await a.post('/api/v1/segments', body);
    expect(made.status, JSON.stringify(made.body)).toBe(201);
  }
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

/** Types a chip's text and presses Enter (the way a person adds a value). */
async function chip(input: Locator, text: string): Promise<void> {
  await input.pressSequentially(text);
  await input.press('Enter');
}

async function sample(n: number, name: string, values: string): Promise<void> {
  await page.getByRole('button', { name: 'Add sample attribute' }).click();
  await page.getByLabel(`Sample attribute ${n} name`).fill(name);
  await chip(page.getByLabel(`Sample attribute ${n} values`), values);
}

const expected = [
  { attribute: 'plan', op: 'in', values: ['pro', 'team'] },
  { attribute: 'appVersion', op: 'semverGt', values: ['2.0.0'] },
  { segment: 'dutch' },
  { attribute: 'email', op: 'endsWith', values: ['@test.example'], negate: true },
];

describe('condition editor', () => {
  it('builds a rule with several operators without JSON, previews it on sample attributes by share, saves it, and the SDK follows it', async () => {
    await page.goto(srv.url + '/flags/new-checkout');
    await page.getByRole('heading', { name: 'Targeting in production' }).waitFor();
    await page.getByRole('button', { name: 'Add rule' }).click();
    const rule = page.getByRole('group', { name: 'Rule 1: rule-1' });
    // No JSON anywhere in the editor: the rule has no text area, the preview's sample contexts no JSON input.
    expect(await rule.locator('textarea').count()).toBe(0);
    expect(await page.locator('form.editor').getByText(/JSON/).count()).toBe(0);

    // plan is one of pro, team: chips added with a comma and with Enter; a chip removed with its button.
    await rule.getByRole('button', { name: 'Add condition' }).click();
    await rule.getByLabel('Condition 1 attribute').fill('plan');
    const operator = rule.getByLabel('Condition 1 operator');
    expect(await operator.locator('option').allTextContents()).toEqual([
      'is one of',
      'starts with',
      'ends with',
      'contains',
      'matches (regular expression)',
      '< (number)',
      '≤ (number)',
      '> (number)',
      '≥ (number)',
      'semver =',
      'semver <',
      'semver >',
      'before (date)',
      'after (date)',
      'exists',
    ]);
    expect(await rule.getByLabel('Condition 1 value type').locator('option').allTextContents()).toEqual(['text', 'number', 'true/false']);
    await rule.getByLabel('Add a value to condition 1').pressSequentially('pro,free,');
    await chip(rule.getByLabel('Add a value to condition 1'), 'team');
    await rule.getByRole('button', { name: 'Remove value free from condition 1' }).click();

    // appVersion semver > 2.0.0
    await rule.getByRole('button', { name: 'Add condition' }).click();
    await rule.getByLabel('Condition 2 attribute').fill('appVersion');
    await rule.getByLabel('Condition 2 operator').selectOption({ label: 'semver >' });
    await chip(rule.getByLabel('Add a value to condition 2'), '2.0.0');

    // not: email ends with @test.example
    await rule.getByRole('button', { name: 'Add condition' }).click();
    await rule.getByLabel('Condition 3 attribute').fill('email');
    await rule.getByLabel('Condition 3 operator').selectOption({ label: 'ends with' });
    await rule.getByLabel('Condition 3 not').check();
    await chip(rule.getByLabel('Add a value to condition 3'), '@test.example');

    // in segment dutch, picked from the list, then moved above the email condition.
    await rule.getByRole('button', { name: 'Add segment condition' }).click();
    const segment = rule.getByLabel('Condition 4 segment');
    expect(await segment.locator('option').allTextContents()).toEqual(['beta-testers', 'dutch — people in NL']);
    await segment.selectOption('dutch');
    await rule.getByRole('button', { name: 'Move condition 4 up' }).click();
    expect(await rule.getByLabel('Condition 3 segment').inputValue()).toBe('dutch');
    expect(await rule.getByLabel('Condition 4 attribute').inputValue()).toBe('email');
    expect(await rule.getByRole('list', { name: /Problems with condition/ }).count()).toBe(0);

    // The preview's sample contexts: plan by share, the other attributes for everyone.
    await sample(1, 'plan', 'pro 30%, free 70%');
    await sample(2, 'appVersion', '3.1.0');
    await sample(3, 'email', 'a@acme.example');
    await sample(4, 'country', 'NL 100%');
    await expect.poll(() => page.getByTestId('sample-0').textContent()).toMatch(/pro 30%.*free 70%/);
    const preview = page.getByTestId('preview');
    await expect.poll(async () => (await preview.textContent()) ?? '').toMatch(/\d+ of 10000 sample contexts \([\d.]+%\) would change variant/);
    const moved = Number(/(\d+) of 10000 sample contexts/.exec((await preview.textContent()) ?? '')![1]);
    expect(moved).toBeGreaterThan(2800);
    expect(moved).toBeLessThan(3200);
    expect(await preview.getByRole('listitem').allTextContents()).toEqual([`${moved} move from off to on`]);

    await page.getByRole('button', { name: 'Save targeting' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    const stored = (await api(srv).get(STATE)).body as { rules: Array<{ id: string; conditions: unknown[]; serve: unknown }>; version: number };
    expect(stored.rules).toEqual([{ id: 'rule-1', conditions: expected, serve: { variant: 'on' } }]);

    const base = { key: 'u-1', plan: 'pro', appVersion: '2.1.0', email: 'a@acme.example', country: 'NL' };
    await expect.poll(() => sdk.variation('new-checkout', base, false), { timeout: 5000 }).toBe(true);
    expect(sdk.variationDetail('new-checkout', base, false).reason).toMatchObject({ kind: 'RULE_MATCH', ruleId: 'rule-1' });
    expect(sdk.variation('new-checkout', { ...base, plan: 'team' }, false)).toBe(true);
    expect(sdk.variation('new-checkout', { ...base, plan: 'free' }, false)).toBe(false);
    expect(sdk.variation('new-checkout', { ...base, appVersion: '2.0.0' }, false)).toBe(false);
    expect(sdk.variation('new-checkout', { ...base, appVersion: '10.0.0-rc.1' }, false)).toBe(true);
    expect(sdk.variation('new-checkout', { ...base, email: 'b@test.example' }, false)).toBe(false);
    const { email: _e, ...noEmail } = base;
    expect(sdk.variation('new-checkout', noEmail, false)).toBe(false);
    expect(sdk.variation('new-checkout', { ...base, country: 'DE' }, false)).toBe(false);
    expect(errors).toEqual([]);
  });

  it('names a bad regular expression and a non-semver version next to their conditions, and the save is refused with the same messages', async () => {
    const before = (await api(srv).get(STATE)).body as { version: number };
    const rule = page.getByRole('group', { name: 'Rule 1: rule-1' });
    await rule.getByLabel('Condition 1 attribute').waitFor();
    await chip(rule.getByLabel('Add a value to condition 2'), '4.2');
    await rule.getByRole('button', { name: 'Add condition' }).click();
    await rule.getByLabel('Condition 5 attribute').fill('userAgent');
    await rule.getByLabel('Condition 5 operator').selectOption({ label: 'matches (regular expression)' });
    // A pattern may hold commas: under "matches" only Enter adds a chip.
    await chip(rule.getByLabel('Add a value to condition 5'), 'Mobile(,[0-9]{1,3}');
    expect(await rule.locator('.chip').filter({ hasText: 'Mobile(,[0-9]{1,3}' }).count()).toBe(1);

    const versionProblems = rule.getByRole('list', { name: 'Problems with condition 2' });
    const patternProblems = rule.getByRole('list', { name: 'Problems with condition 5' });
    await versionProblems.waitFor();
    await patternProblems.waitFor();
    const versionMessage = ((await versionProblems.textContent()) ?? '').trim();
    const patternMessage = ((await patternProblems.textContent()) ?? '').trim();
    expect(versionMessage).toMatch(/^\/rules\/0\/conditions\/1\/values\/1: .*4\.2/);
    expect(patternMessage).toMatch(/^\/rules\/0\/conditions\/4\/values\/0: /);
    expect(await rule.getByRole('list', { name: /Problems with condition [134]$/ }).count()).toBe(0);
    expect(await rule.getByLabel('Add a value to condition 2').getAttribute('aria-invalid')).toBe('true');

    await page.getByRole('button', { name: 'Save targeting' }).click();
    const alert = page.locator('form.editor p.error[role="alert"]');
    await alert.waitFor();
    const refused = (await alert.textContent()) ?? '';
    expect(refused).toContain(versionMessage);
    expect(refused).toContain(patternMessage);
    // What the API says about the same body, directly.
    const direct = await api(srv).put(STATE, {
      enabled: true,
      offVariant: 'off',
      targets: [],
      rules: [
        {
          id: 'rule-1',
          conditions: [
            expected[0],
            { ...expected[1], values: ['2.0.0', '4.2'] },
            expected[2],
            expected[3],
            { attribute: 'userAgent', op: 'matches', values: ['Mobile(,[0-9]{1,3}'] },
          ],
          serve: { variant: 'on' },
        },
      ],
      fallthrough: { variant: 'off' },
    });
    expect(direct.status).toBe(400);
    const apiMessages = (direct.body as { errors: Array<{ path: string; message: string }> }).errors.map((e) => `${e.path}: ${e.message}`);
    expect(apiMessages).toContain(versionMessage);
    expect(apiMessages).toContain(patternMessage);
    expect(((await api(srv).get(STATE)).body as { version: number }).version).toBe(before.version);

    // Removing the bad chip and condition makes the state valid again.
    await rule.getByRole('button', { name: 'Remove value 4.2 from condition 2' }).click();
    await rule.getByRole('button', { name: 'Remove condition 5' }).click();
    expect(await rule.getByRole('list', { name: /Problems with condition/ }).count()).toBe(0);
    expect(errors).toEqual([]);
  });

  it('types values: a number among the strings of "is one of", numbers for ≥ (text that is not one is refused), and the SDK does not coerce', async () => {
    const rule = page.getByRole('group', { name: 'Rule 1: rule-1' });
    await rule.getByLabel('Condition 1 value type').selectOption({ label: 'number' });
    await chip(rule.getByLabel('Add a value to condition 1'), '3');
    expect(await rule.locator('.chip').filter({ hasText: '3 (number)' }).count()).toBe(1);
    await rule.getByRole('button', { name: 'Add condition' }).click();
    await rule.getByLabel('Condition 5 attribute').fill('seats');
    await rule.getByLabel('Condition 5 operator').selectOption({ label: '≥ (number)' });
    expect(await rule.getByLabel('Condition 5 value type').count()).toBe(0);
    await chip(rule.getByLabel('Add a value to condition 5'), 'five');
    await rule.getByText('"five" is not a number').waitFor();
    await rule.getByLabel('Add a value to condition 5').fill('');
    await chip(rule.getByLabel('Add a value to condition 5'), '5');
    // exists takes no values: switching to it drops them and offers no value input.
    await rule.getByRole('button', { name: 'Add condition' }).click();
    await rule.getByLabel('Condition 6 attribute').fill('email');
    await rule.getByLabel('Condition 6 operator').selectOption({ label: 'exists' });
    expect(await rule.getByLabel('Add a value to condition 6').count()).toBe(0);
    await page.getByRole('button', { name: 'Save targeting' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    const stored = (await api(srv).get(STATE)).body as { rules: Array<{ conditions: unknown[] }> };
    expect(stored.rules[0]!.conditions).toEqual([
      { attribute: 'plan', op: 'in', values: ['pro', 'team', 3] },
      expected[1],
      expected[2],
      expected[3],
      { attribute: 'seats', op: 'gte', values: [5] },
      { attribute: 'email', op: 'exists' },
    ]);
    // Opened again, a condition offers the type of its last value.
    await page.reload();
    await page.getByRole('group', { name: 'Rule 1: rule-1' }).getByLabel('Condition 1 value type').waitFor();
    expect(await page.getByRole('group', { name: 'Rule 1: rule-1' }).getByLabel('Condition 1 value type').inputValue()).toBe('number');
    const base = { key: 'u-2', plan: 3, appVersion: '2.1.0', email: 'a@acme.example', country: 'NL', seats: 5 };
    await expect.poll(() => sdk.variation('new-checkout', base, false), { timeout: 5000 }).toBe(true);
    expect(sdk.variation('new-checkout', { ...base, plan: '3' }, false)).toBe(false);
    expect(sdk.variation('new-checkout', { ...base, seats: 4 }, false)).toBe(false);
    expect(sdk.variation('new-checkout', { ...base, seats: '5' }, false)).toBe(false);
    expect(errors).toEqual([]);
  });

  it("edits a segment's rules with the same editor (no segment conditions in them), with the API's messages, and the SDK follows", async () => {
    const base = { key: 'u-3', plan: 'pro', appVersion: '2.1.0', email: 'x@other.example', country: 'NL', seats: 5 };
    expect(sdk.variation('new-checkout', base, false)).toBe(true);
    await page.getByRole('link', { name: 'Segments' }).click();
    await page.getByRole('button', { name: 'Edit segment dutch' }).click();
    const rule = page.getByRole('group', { name: 'Segment rule 1', exact: true });
    expect(await rule.getByLabel('Condition 1 attribute').inputValue()).toBe('country');
    expect(await rule.locator('.chip').allTextContents()).toEqual(['NL×']);
    expect(await rule.getByRole('button', { name: 'Add segment condition' }).count()).toBe(0);
    expect(await page.locator('form.editor').getByText(/JSON/).count()).toBe(0);
    await rule.getByRole('button', { name: 'Add condition' }).click();
    await rule.getByLabel('Condition 2 attribute').fill('email');
    await rule.getByLabel('Condition 2 operator').selectOption({ label: 'matches (regular expression)' });
    await chip(rule.getByLabel('Add a value to condition 2'), '@acme\\.(example');
    const problems = rule.getByRole('list', { name: 'Problems with condition 2' });
    await problems.waitFor();
    const message = ((await problems.textContent()) ?? '').trim();
    expect(message).toMatch(/^\/rules\/0\/conditions\/1\/values\/0: /);
    await page.getByRole('button', { name: 'Save segment' }).click();
    expect(await page.locator('form.editor p.error[role="alert"]').textContent()).toContain(message);
    await rule.getByRole('button', { name: 'Remove value @acme\\.(example from condition 2' }).click();
    await chip(rule.getByLabel('Add a value to condition 2'), '@acme\\.example$');
    expect(await rule.getByRole('list', { name: /Problems with condition/ }).count()).toBe(0);
    await page.getByRole('button', { name: 'Save segment' }).click();
    await page.getByRole('button', { name: 'Edit segment dutch' }).waitFor();
    const stored = (await api(srv).get('/api/v1/segments/dutch')).body as { rules: Array<{ conditions: unknown[] }> };
    expect(stored.rules.map((r) => r.conditions)).toEqual([
      [
        { attribute: 'country', op: 'in', values: ['NL'] },
        { attribute: 'email', op: 'matches', values: ['@acme\\.example$'] },
      ],
    ]);
    await expect.poll(() => sdk.variation('new-checkout', base, false), { timeout: 5000 }).toBe(false);
    expect(sdk.variation('new-checkout', { ...base, email: 'x@acme.example' }, false)).toBe(true);
    expect(errors).toEqual([]);
  });
});
