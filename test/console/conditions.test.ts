/** The condition editor's pure parts: operators in words, typed chips, operator changes, suggestions, sample shares. */
import { describe, expect, it } from 'vitest';
import { OPERATORS } from '@aviary/sdk/core';
import { attributesUsed, chipText, OPERATOR_LABELS, parseShares, parseValue, valueTypes, withOperator } from '../../console/src/lib/conditions.js';

describe('condition editor helpers', () => {
  it('lists every operator of the contract, in its order, each with words', () => {
    expect(OPERATOR_LABELS.map(([op]) => op)).toEqual([...OPERATORS]);
    expect(new Map(OPERATOR_LABELS).get('matches')).toBe('matches (regular expression)');
    expect(new Map(OPERATOR_LABELS).get('semverLt')).toBe('semver <');
    expect(new Set(OPERATOR_LABELS.map(([, w]) => w)).size).toBe(OPERATORS.length);
  });

  it('types values by operator: in takes strings, numbers, booleans; dates also epoch ms; exists none', () => {
    expect(valueTypes('in')).toEqual(['string', 'number', 'boolean']);
    expect(valueTypes('gte')).toEqual(['number']);
    expect(valueTypes('semverGt')).toEqual(['version']);
    expect(valueTypes('before')).toEqual(['date', 'epoch']);
    expect(valueTypes('exists')).toEqual([]);
    expect(valueTypes('endsWith')).toEqual(['string']);
  });

  it('parses chips into the chosen type and refuses numbers and booleans that are not', () => {
    expect(parseValue('3', 'string')).toEqual({ value: '3' });
    expect(parseValue(' 3.5 ', 'number')).toEqual({ value: 3.5 });
    expect(parseValue('abc', 'number')).toEqual({ error: '"abc" is not a number' });
    expect(parseValue('true', 'boolean')).toEqual({ value: true });
    expect(parseValue('yes', 'boolean')).toEqual({ error: '"yes" is not true or false' });
    expect(parseValue('1767225600000', 'epoch')).toEqual({ value: 1767225600000 });
    // Kept as typed: the validator (the API's messages) judges dates and versions.
    expect(parseValue('4.2', 'version')).toEqual({ value: '4.2' });
    expect(parseValue('', 'string')).toEqual({ error: 'is empty' });
    expect(chipText(3, 'in')).toBe('3 (number)');
    expect(chipText('3', 'in')).toBe('3');
  });

  it('keeps the values a new operator takes, and drops them all for exists', () => {
    const c = { attribute: 'plan', op: 'in' as const, values: ['pro', 3, true], negate: true };
    expect(withOperator(c, 'startsWith')).toEqual({ attribute: 'plan', op: 'startsWith', values: ['pro'], negate: true });
    expect(withOperator(c, 'gt')).toEqual({ attribute: 'plan', op: 'gt', values: [3], negate: true });
    expect(withOperator(c, 'exists')).toEqual({ attribute: 'plan', op: 'exists', negate: true });
    expect(withOperator({ attribute: 'plan', op: 'exists' }, 'in')).toEqual({ attribute: 'plan', op: 'in', values: [] });
  });

  it('suggests the attributes the rules use, once each, sorted', () => {
    const rules = [
      { conditions: [{ attribute: 'plan', op: 'in' as const, values: ['pro'] }, { segment: 'beta' }] },
      {
        conditions: [
          { attribute: 'country', op: 'in' as const, values: ['NL'] },
          { attribute: 'plan', op: 'exists' as const },
        ],
      },
    ];
    expect(attributesUsed(rules)).toEqual(['country', 'plan']);
  });

  it('parses sample shares "pro 30%, free 70%", a share left out taking the rest, and refuses more than 100%', () => {
    expect(parseShares('pro 30%, free 70%', 'string')).toEqual({
      shares: [
        { value: 'pro', percent: 30 },
        { value: 'free', percent: 70 },
      ],
    });
    expect(parseShares('pro 30%, free', 'string')).toEqual({
      shares: [
        { value: 'pro', percent: 30 },
        { value: 'free', percent: 70 },
      ],
    });
    expect(parseShares('5 12.5%', 'number')).toEqual({ shares: [{ value: 5, percent: 12.5 }] });
    expect(parseShares('team 20%', 'string', 90)).toEqual({ error: 'the shares total 110%, more than 100%' });
    expect(parseShares('x 10%', 'number')).toEqual({ error: '"x" is not a number' });
  });
});
