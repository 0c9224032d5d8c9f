// Storage for the Functions host and the app: reachable with Entra identities only (no shared key,
// no SAS), plus the blob containers, queues and tables the app names in exports/names.py.

@description('Storage account name (3-24 lowercase letters and digits, globally unique).')
param name string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Replication of the storage account.')
param skuName string = 'Standard_LRS'

@description('Blob containers the app uses (exports/names.py CONTAINERS).')
param containerNames array

@description('Blob container that holds the Flex Consumption deployment package (infra only).')
param deploymentContainerName string

@description('Queues the app uses, including the poison queues it reads (exports/names.py QUEUES).')
param queueNames array

@description('Tables the app uses (exports/names.py TABLES).')
param tableNames array

@description('Container of the runs\' working files (personal data): the lifecycle policy below deletes them.')
param runFilesContainerName string

@description('Days after which the lifecycle policy deletes any run file still there (a backstop to the app\'s own deletion).')
param runFilesRetentionDays int

@description('Days a deleted blob or container can be restored.')
param deleteRetentionDays int = 7

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    //checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches storage from dynamic outbound addresses; access needs an Entra token and an RBAC role because shared keys are off
    //checkov:skip=CKV_AZURE_59: same as CKV_AZURE_35, the public endpoint is needed without VNet integration and accepts Entra identities only
    //checkov:skip=CKV_AZURE_206: the account holds working files of runs and segments the customer-data platform can land again; choose Standard_ZRS or Standard_GZRS with skuName where the region offers it
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for containerName in containerNames: {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}]

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// The app deletes a run's working files when it finishes and its reports after
// EXPORT_RETENTION_DAYS; this rule deletes whatever a crash or a stuck run left behind. It
// covers the run files container only: the sync state lives as long as its export.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-run-files'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${runFilesContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: runFilesRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queueNames: {
  parent: queueService
  name: queueName
}]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for tableName in tableNames: {
  parent: tableService
  name: tableName
}]

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
