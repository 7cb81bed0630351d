//! Test infrastructure shared by every crate's tests: a private throwaway
//! PostgreSQL cluster (`pg`) and the AWS emulator in server mode (`moto`).
