// Package function owns Lambda functions: their configuration, validation
// against Lambda's limits, the state machine (Pending → Active | Failed;
// LastUpdateStatus InProgress → Successful | Failed) and the Service that
// creates, updates and deletes them in the store and deploys their images.
package function
