// Creates or updates the services' users (mongosh --nodb --file): readWrite on each database in
// DATABASES, in the admin database, password from the chart's values. Idempotent; waits for the
// server (the hook may start before MongoDB accepts connections). Every setting comes from the
// environment: MONGO_HOST, MONGO_INITDB_ROOT_USERNAME/PASSWORD, GATEWAY_*, CONVERTER_*, DATABASES.
const env = process.env;
const uri = `mongodb://${env.MONGO_HOST}/admin`;
let conn = null;
for (let attempt = 1; conn === null; attempt++) {
  try {
    conn = new Mongo(uri);
    conn.getDB('admin').auth(env.MONGO_INITDB_ROOT_USERNAME, env.MONGO_INITDB_ROOT_PASSWORD);
  } catch (e) {
    conn = null;
    if (attempt >= 60) {
      throw new Error(`MongoDB at ${env.MONGO_HOST} not reachable as the root user: ${e.message}`);
    }
    print(`waiting for MongoDB at ${env.MONGO_HOST} (${e.message})`);
    sleep(5000);
  }
}
const admin = conn.getDB('admin');
const roles = env.DATABASES.split(',').filter(Boolean).map((db) => ({ role: 'readWrite', db }));
for (const who of ['GATEWAY', 'CONVERTER']) {
  const user = env[`${who}_USERNAME`];
  const pwd = env[`${who}_PASSWORD`];
  if (admin.getUser(user) === null) {
    admin.createUser({ user, pwd, roles });
    print(`created user ${user}: readWrite on ${env.DATABASES}`);
  } else {
    admin.updateUser(user, { pwd, roles });
    print(`updated user ${user}: readWrite on ${env.DATABASES}`);
  }
}
