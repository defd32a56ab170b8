/** Wire types of the admin API, from the generated OpenAPI types (openapi/types.ts is the source of truth). */
import type { components, operations } from '../../../openapi/types.js';

type S = components['schemas'];
export type Environment = S['Environment'];
export type Flag = S['Flag'];
export type FlagState = S['FlagState'];
export type FlagStateResource = S['FlagStateResource'];
export type Serve = S['Serve'];
export type Rule = S['Rule'];
export type Condition = S['Condition'];
export type Target = S['Target'];
export type Weight = S['Weight'];
export type Segment = S['Segment'];
export type KillResult = S['KillResult'];
export type KillAllResult = S['KillAllResult'];
export type ReviveAllResult = S['ReviveAllResult'];
export type EnvironmentSummary = S['EnvironmentSummary'];
export type CanaryStatus = S['CanaryStatus'];
export type Canary = S['Canary'];
export type CanaryStage = S['CanaryStage'];
export type SideSummary = S['SideSummary'];
export type SequentialTest = S['SequentialTest'];
export type AuditEntry = S['AuditEntry'];
export type AuditPage = S['AuditPage'];
export type Token = S['Token'];
export type TokenCreated = S['TokenCreated'];
export type FlagMetrics = S['FlagMetrics'];
export type ConnectedSdkList = S['ConnectedSdkList'];
/** The JSON body of an operation's 200 answer, straight from the spec. */
type Ok<Op extends keyof operations> = operations[Op]['responses'] extends { 200: { content: { 'application/json': infer B } } } ? B : never;
export type EnvironmentList = Ok<'listEnvironments'>;
export type FlagList = Ok<'listFlags'>;
export type SegmentList = Ok<'listSegments'>;
export type TokenList = Ok<'listTokens'>;
