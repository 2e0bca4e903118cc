package defender

// OpToken is the APIError.Op of a failure to get the Azure AD token, before
// any MDE call: its Status is Azure AD's, not MDE's, so callers that report
// MDE statuses (metrics) tell the two apart by it.
const OpToken = "get Azure AD token for MDE"
