-- Argo CD health check of apiservice.dev/ApiService, for the argocd-cm key
-- resource.customizations.health.apiservice.dev_ApiService (see docs/gitops.md).
--
-- It checks a suspended spec first, then a status older than the spec, then the Stalled and Ready
-- conditions that the operator writes. The last three come in the order that kstatus checks
-- them. Argo CD runs the script with gopher-lua, which implements Lua 5.1.
local hs = {}

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: the operator applies no changes."
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the operator to report a status."
local status = obj.status
if status == nil or status.conditions == nil then
  return hs
end

-- observedGeneration is -1 before the first pass and lags the spec until the operator sees it.
local generation = obj.metadata.generation
if status.observedGeneration == nil or status.observedGeneration ~= generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation) .. "."
  return hs
end

local ready = nil
local stalled = nil
for _, condition in ipairs(status.conditions) do
  if condition.type == "Ready" then
    ready = condition
  elseif condition.type == "Stalled" then
    stalled = condition
  end
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = tostring(stalled.reason) .. ": " .. tostring(stalled.message)
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = tostring(ready.message)
  return hs
end

if ready ~= nil then
  hs.message = tostring(ready.reason) .. ": " .. tostring(ready.message)
end
return hs
