// Segment export to ActiveCampaign: the whole app on Azure with a managed identity and no shared
// keys. Deploy: az deployment group create -g RG -f infra/main.bicep -p @infra/main.parameters.json
// Then publish the code: func azure functionapp publish <functionAppName> (see infra/DEPLOY.md).

targetScope = 'resourceGroup'

@description('Short prefix of every resource name: 2-10 lowercase letters and digits.')
@minLength(2)
@maxLength(10)
param namePrefix string

@description('Azure region of every resource (one that offers Flex Consumption).')
param location string = resourceGroup().location

@description('EXPORT_SCHEDULE: NCRONTAB (six fields, UTC) on which every enabled export without its own schedule runs.')
param exportSchedule string = '0 0 3 * * *'

@description('EXPORT_MAX_LEAVERS_PERCENT: the guardrail; leaver actions of a run in which more of the delivered contacts than this leave the segment (or the segment has no rows) wait for an admin\'s approval.')
@minValue(0)
@maxValue(100)
param exportMaxLeaversPercent int = 10

@description('EXPORT_CHUNK_SIZE: contacts per chunk, the unit of work of one worker execution.')
@minValue(250)
param exportChunkSize int = 5000

@description('EXPORT_RETENTION_DAYS: days a finished run\'s history and reports (rejects, dry-run preview) are kept; the storage lifecycle policy deletes run files a week after that as a backstop.')
@minValue(1)
param exportRetentionDays int = 30

@description('SECRET_CACHE_SECONDS: how long a worker instance keeps an API key read from Key Vault.')
@minValue(1)
param secretCacheSeconds int = 300

@description('ACTIVECAMPAIGN_REQUESTS_PER_SECOND: the per-account request limit (documented: 5). Lower it when other integrations share the account.')
@minValue(1)
param activecampaignRequestsPerSecond int = 5

@description('ACTIVECAMPAIGN_BULK_REQUESTS_PER_MINUTE: the per-account bulk import limit (documented: 100).')
@minValue(1)
param activecampaignBulkRequestsPerMinute int = 100

@description('ACTIVECAMPAIGN_UNREACHABLE_SECONDS: how long a check or a chunk retries when ActiveCampaign does not answer at all.')
@minValue(1)
param activecampaignUnreachableSeconds int = 120

@description('ACTIVECAMPAIGN_OUTCOME_WAIT_SECONDS: how long a chunk waits for ActiveCampaign to process its bulk imports; contacts still unprocessed then are unconfirmed and sent again by the next run.')
@minValue(1)
param activecampaignOutcomeWaitSeconds int = 300

@description('ACTIVECAMPAIGN_REQUEST_TIMEOUT_SECONDS: connect and read timeout of each ActiveCampaign request.')
@minValue(1)
param activecampaignRequestTimeoutSeconds int = 30

@description('AZURE_SDK_LOG_LEVEL: level of the Azure SDK and urllib3 loggers; INFO or DEBUG logs every storage request and response (two records per call in Application Insights).')
@allowed([
  'DEBUG'
  'INFO'
  'WARNING'
  'ERROR'
  'CRITICAL'
])
param azureSdkLogLevel string = 'WARNING'

@description('Most instances the app scales out to. Every instance shares the per-account rate budget (100 bulk imports a minute), so more instances than busy accounts only wait.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 10

@description('Memory of each Flex Consumption instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('EXPORT_ADMIN_ROLE: app role (roles claim) that may manage connections and exports.')
param exportAdminRole string = 'Export.Admin'

@description('EXPORT_CONTRIBUTOR_ROLE: app role (roles claim) that may start runs and read their status.')
param exportContributorRole string = 'Export.Contributor'

@description('Client id of the Entra app registration for App Service Authentication. Empty: no platform sign-in and EXPORT_REQUIRE_SIGN_IN=false.')
param authClientId string = ''

@description('E-mail address notified when a run fails. Empty: the alert fires without notification.')
param alertEmail string = ''

@description('Days Log Analytics keeps logs.')
@minValue(30)
param logRetentionInDays int = 30

@description('Replication of the storage account (Standard_ZRS where the region offers it).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSkuName string = 'Standard_LRS'

@description('Spread the app over availability zones: needs a region with zones and storageSkuName Standard_ZRS.')
param zoneRedundant bool = false

@description('Tags for every resource.')
param tags object = {
  workload: 'segment-export'
}

var token = uniqueString(subscription().id, resourceGroup().id, namePrefix)
var prefix = toLower(namePrefix)
var pythonVersion = '3.11'

// Storage resources the app names (exports/names.py); tests/test_infra.py compares them.
// export-runs comes first: the storage module's lifecycle rule deletes old run files in it. The
// export-sync-state container (each export's sync state) is kept as long as its export: no rule.
var blobContainers = [
  'export-runs'
  'segments'
  'export-sync-state'
]
var storageQueues = [
  'export-segments'
  'export-chunks'
  'export-segments-poison'
  'export-chunks-poison'
]
var storageTables = [
  'connections'
  'exports'
  'runs'
  'exportruns'
  'ratebudgets'
]
// Flex Consumption deployment package: infra only, the app never names it.
var deploymentContainer = 'app-package'

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-${prefix}-${token}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: take(replace('st${prefix}${token}', '-', ''), 24)
    location: location
    tags: tags
    skuName: storageSkuName
    containerNames: blobContainers
    deploymentContainerName: deploymentContainer
    queueNames: storageQueues
    tableNames: storageTables
    runFilesContainerName: blobContainers[0] // export-runs, the runs' working files
    runFilesRetentionDays: exportRetentionDays + 7
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: take('kv-${prefix}-${token}', 24)
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    namePrefix: '${prefix}-${token}'
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
    alertEmail: alertEmail
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

// Every app setting, in one object. Registry settings (exports/settings.py, where azure or
// everywhere) plus the two the host reads for Entra-authenticated Application Insights.
var appSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  AzureWebJobsStorage__blobServiceUri: storage.outputs.blobEndpoint
  AzureWebJobsStorage__queueServiceUri: storage.outputs.queueEndpoint
  AzureWebJobsStorage__tableServiceUri: storage.outputs.tableEndpoint
  AZURE_CLIENT_ID: identity.outputs.clientId
  KEY_VAULT_URL: keyVault.outputs.uri
  EXPORT_SCHEDULE: exportSchedule
  EXPORT_MAX_LEAVERS_PERCENT: string(exportMaxLeaversPercent)
  EXPORT_CHUNK_SIZE: string(exportChunkSize)
  EXPORT_RETENTION_DAYS: string(exportRetentionDays)
  SECRET_CACHE_SECONDS: string(secretCacheSeconds)
  ACTIVECAMPAIGN_REQUESTS_PER_SECOND: string(activecampaignRequestsPerSecond)
  ACTIVECAMPAIGN_BULK_REQUESTS_PER_MINUTE: string(activecampaignBulkRequestsPerMinute)
  ACTIVECAMPAIGN_REQUEST_TIMEOUT_SECONDS: string(activecampaignRequestTimeoutSeconds)
  ACTIVECAMPAIGN_UNREACHABLE_SECONDS: string(activecampaignUnreachableSeconds)
  ACTIVECAMPAIGN_OUTCOME_WAIT_SECONDS: string(activecampaignOutcomeWaitSeconds)
  EXPORT_ADMIN_ROLE: exportAdminRole
  EXPORT_CONTRIBUTOR_ROLE: exportContributorRole
  EXPORT_REQUIRE_SIGN_IN: empty(authClientId) ? 'false' : 'true'
  AZURE_SDK_LOG_LEVEL: azureSdkLogLevel
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    name: 'func-${prefix}-${token}'
    planName: 'plan-${prefix}-${token}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    appSettings: appSettings
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainer}'
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    pythonVersion: pythonVersion
    zoneRedundant: zoneRedundant
    authClientId: authClientId
  }
  // The host starts as soon as the app exists: give it its roles first.
  dependsOn: [
    roles
  ]
}

output functionAppName string = functionApp.outputs.name
output functionAppHostName string = functionApp.outputs.hostName
output storageAccountName string = storage.outputs.name
output keyVaultUri string = keyVault.outputs.uri
output applicationInsightsName string = monitoring.outputs.appInsightsName
output failedRunsQuery string = monitoring.outputs.failedRunsQuery
