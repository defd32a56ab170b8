/**
 * `sdk/core` is pure: it imports nothing outside itself (its MurmurHash3 is its own), runs nothing on import, touches no Node
 * globals, and keeps no state of its own between calls. The source checks read the TypeScript syntax tree (with the
 * type checker to tell a module-level binding from a local one); the behaviour checks compile environments with
 * different options side by side and interleave their evaluations.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import {
  applyChanges,
  compileEnvironment,
  compileTrustedEnvironment,
  evaluate,
  lazyDfa,
  type EnvironmentSnapshot,
  type EvaluationContext,
  type FlagConfig,
  type PatternEngine,
} from '../../sdk/core/index.js';

const coreDir = join(import.meta.dirname, '../../sdk/core');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

const files = sourceFiles(coreDir);
const program = ts.createProgram(files, { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, strict: true, noEmit: true });
const checker = program.getTypeChecker();
const allowedPackages = new Set<string>();

function sourceOf(file: string): ts.SourceFile {
  const sf = program.getSourceFile(file);
  if (sf === undefined) throw new Error(`not in the program: ${file}`);
  return sf;
}

const where = (node: ts.Node) => {
  const sf = node.getSourceFile();
  return `${relative(coreDir, sf.fileName)}:${sf.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
};

function visit(node: ts.Node, f: (n: ts.Node) => void): void {
  f(node);
  ts.forEachChild(node, (c) => visit(c, f));
}

/** Every module specifier: static imports and exports, dynamic `import()` and `require()`. */
function specifiers(sf: ts.SourceFile): { spec: string; node: ts.Node; sideEffect: boolean; dynamic: boolean }[] {
  const out: { spec: string; node: ts.Node; sideEffect: boolean; dynamic: boolean }[] = [];
  visit(sf, (n) => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      out.push({ spec: n.moduleSpecifier.text, node: n, sideEffect: ts.isImportDeclaration(n) && n.importClause === undefined, dynamic: false });
    } else if (
      ts.isCallExpression(n) &&
      (n.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(n.expression) && n.expression.text === 'require'))
    ) {
      const arg = n.arguments[0];
      out.push({ spec: arg && ts.isStringLiteral(arg) ? arg.text : '<computed>', node: n, sideEffect: false, dynamic: true });
    }
  });
  return out;
}

/** The declaration `node` (an identifier) refers to, through import aliases. */
function declarationOf(node: ts.Identifier, checker: ts.TypeChecker): ts.Declaration | undefined {
  let sym = checker.getSymbolAtLocation(node);
  if (sym && sym.flags & ts.SymbolFlags.Alias) sym = checker.getAliasedSymbol(sym);
  return sym?.declarations?.[0];
}

/** Whether `decl` is a variable declared at the top level of a module (not inside a function, block or class). */
function isModuleVariable(decl: ts.Declaration | undefined): boolean {
  if (decl === undefined || !ts.isVariableDeclaration(decl)) return false;
  const statement = decl.parent.parent;
  return ts.isVariableStatement(statement) && ts.isSourceFile(statement.parent);
}

/** The identifier an assignment target or mutated object starts from (`a` in `a.b[c].d`), or null (`this`, calls). */
function rootOf(e: ts.Expression): ts.Identifier | null {
  for (;;) {
    if (ts.isIdentifier(e)) return e;
    if (ts.isPropertyAccessExpression(e) || ts.isElementAccessExpression(e) || ts.isParenthesizedExpression(e) || ts.isNonNullExpression(e))
      e = e.expression;
    else if (ts.isAsExpression(e) || ts.isTypeAssertionExpression(e) || ts.isSatisfiesExpression(e)) e = e.expression;
    else return null;
  }
}

const MUTATORS = new Set(['set', 'add', 'delete', 'clear', 'push', 'pop', 'shift', 'unshift', 'splice', 'sort', 'reverse', 'fill', 'copyWithin']);
const ASSIGNMENTS = new Set([
  ts.SyntaxKind.EqualsToken,
  ts.SyntaxKind.PlusEqualsToken,
  ts.SyntaxKind.MinusEqualsToken,
  ts.SyntaxKind.AsteriskEqualsToken,
  ts.SyntaxKind.SlashEqualsToken,
  ts.SyntaxKind.PercentEqualsToken,
  ts.SyntaxKind.AsteriskAsteriskEqualsToken,
  ts.SyntaxKind.LessThanLessThanEqualsToken,
  ts.SyntaxKind.GreaterThanGreaterThanEqualsToken,
  ts.SyntaxKind.GreaterThanGreaterThanGreaterThanEqualsToken,
  ts.SyntaxKind.AmpersandEqualsToken,
  ts.SyntaxKind.BarEqualsToken,
  ts.SyntaxKind.CaretEqualsToken,
  ts.SyntaxKind.BarBarEqualsToken,
  ts.SyntaxKind.AmpersandAmpersandEqualsToken,
  ts.SyntaxKind.QuestionQuestionEqualsToken,
]);

/** What each expression writes to: assignment targets, `++`/`--` and `delete` operands, receivers of mutating calls. */
function writtenTargets(sf: ts.SourceFile): ts.Expression[] {
  const out: ts.Expression[] = [];
  visit(sf, (n) => {
    if (ts.isBinaryExpression(n) && ASSIGNMENTS.has(n.operatorToken.kind)) out.push(n.left);
    else if (
      (ts.isPrefixUnaryExpression(n) || ts.isPostfixUnaryExpression(n)) &&
      (n.operator === ts.SyntaxKind.PlusPlusToken || n.operator === ts.SyntaxKind.MinusMinusToken)
    ) {
      out.push(n.operand);
    } else if (ts.isDeleteExpression(n)) out.push(n.expression);
    else if (ts.isCallExpression(n) && ts.isPropertyAccessExpression(n.expression)) {
      const { expression: receiver, name } = n.expression;
      const text = receiver.getText(sf);
      if (MUTATORS.has(name.text)) out.push(receiver);
      else if (
        (text === 'Object' && ['assign', 'defineProperty', 'defineProperties', 'setPrototypeOf'].includes(name.text)) ||
        (text === 'Reflect' && name.text === 'set')
      ) {
        if (n.arguments[0]) out.push(n.arguments[0]);
      }
    }
  });
  return out;
}

/**
 * Why the initializer of a module-level `const` could hold state, or '' when it cannot: literals (regular
 * expressions without the stateful `g`/`y` flags), functions, other constants and arithmetic over them, array and
 * object literals of such (never written: see the write check), `Object.freeze(...)`, and `new Set`/`new Map`
 * declared `ReadonlySet`/`ReadonlyMap`. Anything else (a call, another constructor) might build hidden state.
 */
function statefulInitializer(e: ts.Expression, declared: ts.TypeNode | undefined): string {
  const inner = (x: ts.Expression) => statefulInitializer(x, undefined);
  if (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isSatisfiesExpression(e) || ts.isTypeAssertionExpression(e))
    return inner(e.expression);
  if (ts.isRegularExpressionLiteral(e)) return /\/[a-z]*[gy][a-z]*$/.test(e.text) ? `a global or sticky regular expression (lastIndex is state)` : '';
  if (ts.isStringLiteral(e) || ts.isNumericLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e) || ts.isBigIntLiteral(e)) return '';
  if ([ts.SyntaxKind.TrueKeyword, ts.SyntaxKind.FalseKeyword, ts.SyntaxKind.NullKeyword].includes(e.kind)) return '';
  if (ts.isIdentifier(e) || ts.isPropertyAccessExpression(e)) return '';
  if (ts.isArrowFunction(e) || ts.isFunctionExpression(e)) return '';
  if (ts.isPrefixUnaryExpression(e)) return inner(e.operand);
  if (ts.isBinaryExpression(e)) return inner(e.left) || inner(e.right);
  if (ts.isConditionalExpression(e)) return inner(e.condition) || inner(e.whenTrue) || inner(e.whenFalse);
  if (ts.isTemplateExpression(e)) return e.templateSpans.map((s) => inner(s.expression)).find(Boolean) ?? '';
  if (ts.isArrayLiteralExpression(e)) return e.elements.map((x) => inner(ts.isSpreadElement(x) ? x.expression : x)).find(Boolean) ?? '';
  if (ts.isObjectLiteralExpression(e)) {
    for (const p of e.properties) {
      const why = ts.isPropertyAssignment(p)
        ? inner(p.initializer)
        : ts.isSpreadAssignment(p)
          ? inner(p.expression)
          : ts.isShorthandPropertyAssignment(p)
            ? ''
            : 'an accessor or method';
      if (why) return why;
    }
    return '';
  }
  if (ts.isCallExpression(e) && e.expression.getText() === 'Object.freeze') return e.arguments.map(inner).find(Boolean) ?? '';
  if (ts.isNewExpression(e) && ['Set', 'Map'].includes(e.expression.getText())) {
    return declared !== undefined && /^Readonly(Set|Map)</.test(declared.getText())
      ? ''
      : `a ${e.expression.getText()} not declared Readonly${e.expression.getText()}`;
  }
  return `${ts.SyntaxKind[e.kind]} \`${e.getText().slice(0, 60)}\``;
}

/** Everything in `sf` that gives the module state of its own or runs on import, one line each. */
function moduleStateIn(sf: ts.SourceFile, checker: ts.TypeChecker): string[] {
  const out: string[] = [];
  for (const st of sf.statements) {
    if (ts.isVariableStatement(st)) {
      if (!(st.declarationList.flags & ts.NodeFlags.Const)) out.push(`${where(st)} a module-level \`let\`/\`var\``);
      for (const d of st.declarationList.declarations) {
        const why = d.initializer ? statefulInitializer(d.initializer, d.type) : '';
        if (why) out.push(`${where(d)} \`${d.name.getText()}\` is initialized with ${why}`);
      }
    } else if (ts.isExpressionStatement(st)) out.push(`${where(st)} runs on import: \`${st.getText().slice(0, 60)}\``);
    else if (ts.isClassDeclaration(st)) {
      for (const m of st.members) {
        const mods = ts.canHaveModifiers(m) ? (ts.getModifiers(m) ?? []) : [];
        const isStatic = mods.some((x) => x.kind === ts.SyntaxKind.StaticKeyword);
        if (ts.isClassStaticBlockDeclaration(m)) out.push(`${where(m)} a static block`);
        else if (isStatic && ts.isPropertyDeclaration(m) && !mods.some((x) => x.kind === ts.SyntaxKind.ReadonlyKeyword)) {
          out.push(`${where(m)} a static property that is not readonly`);
        }
      }
    }
  }
  for (const target of writtenTargets(sf)) {
    const root = rootOf(target);
    if (root !== null && isModuleVariable(declarationOf(root, checker))) out.push(`${where(target)} writes to the module-level \`${root.text}\``);
  }
  return out;
}

describe('sdk/core stays pure', () => {
  it('has source files to check', () => {
    expect(files.length).toBeGreaterThan(10);
  });

  it.each(files.map((f) => [relative(coreDir, f), f]))('%s imports only sdk/core, statically, for their exports', (_name, file) => {
    const offending = specifiers(sourceOf(file))
      .filter(({ spec, sideEffect, dynamic }) => {
        if (dynamic || sideEffect) return true;
        if (!spec.startsWith('.')) return !allowedPackages.has(spec);
        const target = resolve(dirname(file), spec);
        return target !== coreDir && !target.startsWith(coreDir + sep);
      })
      .map(
        ({ spec, node, sideEffect, dynamic }) => `${where(node)} ${spec}${sideEffect ? ' (side-effect import)' : ''}${dynamic ? ' (dynamic)' : ''}`,
      );
    expect(offending).toEqual([]);
    expect(readFileSync(file, 'utf8')).not.toMatch(/\b(process|require|globalThis\.process|Buffer)\b\s*[.(]/);
  });

  it.each(files.map((f) => [relative(coreDir, f), f]))('%s keeps no module-level state and runs nothing on import', (_name, file) => {
    expect(moduleStateIn(sourceOf(file), checker)).toEqual([]);
  });

  // The checks above must be able to fail: each snippet below is one way a module could hide state.
  it.each([
    ['let hits = 0;', 'module-level `let`'],
    ['const seen = new Map<string, number>();', 'Map not declared'],
    ['const cache = memo(parse);\nfunction memo(f: unknown) { return f; }\nfunction parse() {}', 'CallExpression'],
    ['const last = { variant: -1 };\nexport function f() { last.variant = 2; }', 'writes to the module-level `last`'],
    ['const keys: string[] = [];\nexport function f(k: string) { keys.push(k); }', 'writes to the module-level `keys`'],
    ['const re = /a/g;', 'global or sticky'],
    ['import "./x.js";', 'side-effect'],
    ['export function install() {}\ninstall();', 'runs on import'],
    ['export class C { static count = 0; }', 'static property'],
  ])('would catch %j', (code, message) => {
    const sf = ts.createSourceFile(join(coreDir, 'probe.ts'), code, ts.ScriptTarget.ES2022, true);
    const host = ts.createCompilerHost({});
    const probe = ts.createProgram({
      rootNames: [sf.fileName],
      options: { noEmit: true, noResolve: true },
      host: { ...host, getSourceFile: (name, v) => (name === sf.fileName ? sf : host.getSourceFile(name, v)) },
    });
    const found = [
      ...moduleStateIn(probe.getSourceFile(sf.fileName)!, probe.getTypeChecker()),
      ...specifiers(sf)
        .filter((s) => s.sideEffect)
        .map(() => 'side-effect import'),
    ];
    expect(found.join('\n')).toContain(message);
  });
});

describe('sdk/core keeps no hidden state', () => {
  const bool = [
    { key: 'on', value: true },
    { key: 'off', value: false },
  ];
  const flag = (key: string, pattern: string): FlagConfig => ({
    key,
    kind: 'boolean',
    variants: bool,
    state: {
      enabled: true,
      offVariant: 'off',
      targets: [],
      rules: [{ id: 'staff', conditions: [{ attribute: 'email', op: 'matches', values: [pattern] }], serve: { variant: 'on' } }],
      fallthrough: { variant: 'off' },
      version: 1,
    },
  });
  const snapshot: EnvironmentSnapshot = {
    environment: 'e',
    version: 1,
    flags: [flag('staff', '^[a-z.]+@acme\\.com$')],
    segments: [
      { key: 'acme', included: [], excluded: [], rules: [{ conditions: [{ attribute: 'email', op: 'matches', values: ['@acme\\.com$'] }] }] },
    ],
  };
  const outsider: EvaluationContext = { key: 'u', email: 'eve@evil.example' };
  const staff: EvaluationContext = { key: 's', email: 'jo.doe@acme.com' };

  /** An engine that answers "matches" to everything: wrong on purpose, so its use is visible. */
  const liar: PatternEngine = () => () => true;

  it('uses a pattern engine only in the environments compiled with it, and keeps it for the changes applied to them', () => {
    const lying = compileEnvironment(snapshot, { patternEngine: liar });
    const plain = compileEnvironment(snapshot);
    const dfa = compileTrustedEnvironment(snapshot, { patternEngine: lazyDfa });
    // Compiled after the liar, in any order: each environment answers with its own engine only.
    expect(evaluate(lying, 'staff', outsider, false).value).toBe(true);
    expect(evaluate(plain, 'staff', outsider, false).value).toBe(false);
    expect(evaluate(dfa, 'staff', outsider, false).value).toBe(false);
    expect(evaluate(dfa, 'staff', staff, false).value).toBe(true);

    const segmentRule = { id: 'cohort', conditions: [{ segment: 'acme' }], serve: { variant: 'on' as const } };
    const upsert = { type: 'flag.upsert' as const, flag: { ...flag('cohort', 'x'), state: { ...flag('cohort', 'x').state, rules: [segmentRule] } } };
    const lyingNext = applyChanges(lying, [upsert], 2);
    const plainNext = applyChanges(plain, [upsert], 2);
    expect(evaluate(lyingNext, 'cohort', outsider, false).value).toBe(true);
    expect(evaluate(plainNext, 'cohort', outsider, false).value).toBe(false);
    expect(evaluate(plainNext, 'cohort', staff, false).value).toBe(true);
  });

  it("counts the engine's work where it was passed: one matcher per pattern compiled with it, none elsewhere", () => {
    const programs: number[] = [];
    const counting: PatternEngine = (p) => {
      programs.push(p.prog.length);
      return lazyDfa(p);
    };
    compileEnvironment(snapshot);
    expect(programs).toEqual([]);
    const env = compileEnvironment(snapshot, { patternEngine: counting });
    expect(programs).toHaveLength(2); // the flag's pattern and the segment's
    applyChanges(env, [{ type: 'segment.upsert', segment: snapshot.segments[0]! }], 2);
    expect(programs).toHaveLength(3); // the segment again (its flag does not use it)
  });

  it('answers the golden cases the same whether environments are evaluated alone or interleaved with others', () => {
    const file = JSON.parse(readFileSync(join(import.meta.dirname, '../cases/evaluation.json'), 'utf8')) as {
      environment: EnvironmentSnapshot;
      cases: { flag: string; context: EvaluationContext; default: unknown }[];
    };
    const alone = file.cases.map((c) => evaluate(compileEnvironment(file.environment), c.flag, c.context, c.default));
    const a = compileEnvironment(file.environment, { patternEngine: lazyDfa });
    const b = compileTrustedEnvironment(file.environment);
    const c = compileEnvironment(snapshot, { patternEngine: liar });
    const interleaved = file.cases.map((x, i) => {
      evaluate(c, 'staff', outsider, false);
      const r = i % 2 === 0 ? evaluate(a, x.flag, x.context, x.default) : evaluate(b, x.flag, x.context, x.default);
      evaluate(i % 2 === 0 ? b : a, x.flag, x.context, x.default);
      return r;
    });
    expect(interleaved).toEqual(alone);
  });
});
