/**
 * Wire types of the admin API, straight from the generated `openapi/types.ts` (`npm run gen:api` from
 * openapi/openapi.yaml). Nothing here is written by hand: a spec change that the CLI or the console does not follow
 * is a type error in `npm run typecheck`.
 */
import type { components, operations, paths } from '../openapi/types.js';

export type { components, operations, paths };

export type Schemas = components['schemas'];

export type Problem = Schemas['Problem'];
export type ValidationIssue = Schemas['ValidationIssue'];
export type Environment = Schemas['Environment'];
export type Flag = Schemas['Flag'];
export type FlagKind = Schemas['FlagKind'];
export type EnvironmentSummary = Schemas['EnvironmentSummary'];
export type FlagState = Schemas['FlagState'];
export type FlagStateResource = Schemas['FlagStateResource'];
export type FlagStateWriteResult = Schemas['FlagStateWriteResult'];
export type FlagStateInput = Schemas['FlagStateInput'];
export type Serve = Schemas['Serve'];
export type Rule = Schemas['Rule'];
export type Condition = Schemas['Condition'];
export type Target = Schemas['Target'];
export type Weight = Schemas['Weight'];
export type Prerequisite = Schemas['Prerequisite'];
export type Segment = Schemas['Segment'];
export type SegmentInput = Schemas['SegmentInput'];
export type DeliveryReceipt = Schemas['DeliveryReceipt'];
export type KillResult = Schemas['KillResult'];
export type KillAllRequest = Schemas['KillAllRequest'];
export type KillAllResult = Schemas['KillAllResult'];
export type ReviveAllResult = Schemas['ReviveAllResult'];
export type Canary = Schemas['Canary'];
export type CanaryStage = Schemas['CanaryStage'];
export type CanaryState = Schemas['CanaryState'];
export type CanaryStatus = Schemas['CanaryStatus'];
export type CanaryComparison = Schemas['CanaryComparison'];
export type SideSummary = Schemas['SideSummary'];
export type SequentialTest = Schemas['SequentialTest'];
export type Percentiles = Schemas['Percentiles'];
export type FlagMetrics = Schemas['FlagMetrics'];
export type VariantTotals = Schemas['VariantTotals'];
export type AuditEntry = Schemas['AuditEntry'];
export type AuditPage = Schemas['AuditPage'];
export type Token = Schemas['Token'];
export type TokenKind = Schemas['TokenKind'];
export type TokenCreate = Schemas['TokenCreate'];
export type TokenCreated = Schemas['TokenCreated'];
export type Role = Schemas['Role'];
export type Me = Schemas['Me'];
export type ConnectedSdk = Schemas['ConnectedSdk'];
export type ConnectedSdkList = Schemas['ConnectedSdkList'];
// history (issue 14)
export type HistoryEntry = Schemas['HistoryEntry'];
export type HistoryPage = Schemas['HistoryPage'];
export type HistoryDiff = Schemas['HistoryDiff'];
export type StateChange = Schemas['StateChange'];
export type RevertRequest = Schemas['RevertRequest'];
export type ChangeRequest = Schemas['ChangeRequest'];
export type ChangeRequestStatus = Schemas['ChangeRequestStatus'];
export type ChangeRequestDiffEntry = Schemas['ChangeRequestDiffEntry'];
