// Log Analytics and workspace-based Application Insights with Entra authentication only (local
// auth off: the host sends telemetry with the managed identity), and the failed-run alert.

@description('Name prefix of the monitoring resources.')
param namePrefix string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Days Log Analytics keeps the data.')
param retentionInDays int = 30

@description('E-mail address the failed-run alert notifies; empty: the alert fires without notification.')
param alertEmail string = ''

// The app logs one line per finished run:
// "export run finished: run=<id> export=<id> status=<status>". The alert counts those with
// status=failed or needs_approval (leaver actions held by the guardrail). The same query works in
// the portal (Logs of the workspace) to list those runs.
var failedRunsQuery = 'AppTraces | where Message has "export run finished:" | extend RunId = extract(@"run=(\\S+)", 1, Message), ExportId = extract(@"export=(\\S+)", 1, Message), Status = extract(@"status=(\\w+)", 1, Message) | where Status in ("failed", "needs_approval") | project TimeGenerated, RunId, ExportId, Status, Message'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${namePrefix}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${namePrefix}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'exportfail'
    enabled: true
    emailReceivers: [
      {
        name: 'failed-runs'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource failedRunsAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-failed-runs'
  location: location
  tags: tags
  properties: {
    displayName: 'Segment export run failed or needs approval'
    description: 'An export run finished with status=failed, or its leaver actions are held for approval (status=needs_approval), from the log line "export run finished: ... status=...".'
    severity: 2
    enabled: true
    scopes: [
      workspace.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: failedRunsQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: empty(alertEmail) ? [] : [ actionGroup.id ]
    }
  }
}

output appInsightsName string = appInsights.name
output appInsightsId string = appInsights.id
output connectionString string = appInsights.properties.ConnectionString
output workspaceName string = workspace.name
output failedRunsQuery string = failedRunsQuery
