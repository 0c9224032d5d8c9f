// Flex Consumption plan and the Function App (Python 3.11, Linux), running as the user-assigned
// identity, with its deployment package in a blob container reached with that identity, and
// optional App Service Authentication (Entra ID) in front of the HTTP functions.

@description('Function App name (globally unique host name).')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('App settings as name: value, complete: the template sets no other.')
param appSettings object

@description('URL of the blob container holding the deployment package.')
param deploymentContainerUrl string

@description('Upper bound of instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@description('Memory of each instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Python version of the worker.')
param pythonVersion string = '3.11'

@description('Spread instances over availability zones (needs a region with zones and zone-redundant storage).')
param zoneRedundant bool = false

@description('Client id of the Entra app registration for App Service Authentication; empty: none.')
param authClientId string = ''

@description('Entra issuer of the tokens App Service Authentication accepts.')
param authIssuer string = '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    //checkov:skip=CKV_AZURE_225: zone redundancy is the zoneRedundant parameter, off by default because it needs a region with availability zones and Standard_ZRS storage
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    //checkov:skip=CKV_AZURE_17: callers authenticate with Entra bearer tokens (App Service Authentication) and the timer and queue functions take no requests; client certificates add nothing
    //checkov:skip=CKV_AZURE_222: the management API (HTTP functions) is called from outside; without VNet integration the public endpoint is the way in, guarded by function keys and, with authClientId, Entra sign-in
    //checkov:skip=CKV_AZURE_212: numberOfWorkers does not apply to Flex Consumption, which scales per function between zero and maximumInstanceCount
    //checkov:skip=CKV_AZURE_213: the app has no health endpoint and Flex Consumption replaces failed instances itself; pinging one would only keep instances running
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [for setting in items(appSettings): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// Publishing with user names and passwords is off: publish with an Entra sign-in (func, az).
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// App Service Authentication validates Entra tokens before a request reaches the app, sets
// X-MS-CLIENT-PRINCIPAL for signed-in callers and strips any such header a client sends.
resource auth 'Microsoft.Web/sites/config@2024-04-01' = if (!empty(authClientId)) {
  parent: site
  name: 'authsettingsV2'
  properties: {
    //checkov:skip=CKV_AZURE_13: checkov looks for the classic authsettings resource; this authsettingsV2 resource is App Service Authentication and enables it with platform.enabled
    //checkov:skip=CKV_AZURE_63: checkov reads the site's web config here; HTTP logs are IIS logs that Linux Function Apps do not write, requests go to Application Insights
    //checkov:skip=CKV_AZURE_65: same as CKV_AZURE_63, detailed error pages are an IIS (Windows) feature; errors go to Application Insights
    //checkov:skip=CKV_AZURE_66: same as CKV_AZURE_63, failed request tracing is an IIS (Windows) feature; failures go to Application Insights
    //checkov:skip=CKV_AZURE_80: checkov reads the site's web config here; the app runs Python, not .NET Framework
    //checkov:skip=CKV_AZURE_88: checkov reads the site's web config here; Flex Consumption runs from its blob deployment container and the app needs no Azure Files mount
    //checkov:skip=CKV_AZURE_222: checkov reads the site's web config here; public network access is skipped on the site itself, see there
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authClientId
          openIdIssuer: authIssuer
        }
        validation: {
          allowedAudiences: [
            'api://${authClientId}'
            authClientId
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    httpSettings: {
      requireHttps: true
    }
  }
}

output name string = site.name
output hostName string = site.properties.defaultHostName
