# The database down (SPEC §6.7): GET of a local copy still answers 200
# with X-ClusterStorage-Unverified: 1; everything else gets 503 with
# Retry-After and nothing is half-written; when the database comes back,
# no restart is needed.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key svc mc_key mc_raw storage_root tmp_files
              wait_for registry_rows raw_http);
use Apache::TestRequest ();

my $root = storage_root();
my $host = Apache::TestRequest::hostport();

# Always bring the services back for the next test file, whatever fails.
END { eval { svc('start-db') }; eval { svc('start-mc') } }

sub new_key { '/files/' . unique_key($_[0] || 'db') . '.txt' }
sub mc_forget { mc_raw('delete ' . mc_key($_[0]) . "\r\n") }

# Fixtures while everything is up.
my $key  = new_key('db-local');
my $body = "served from the local copy\n" x 10;
my $r = req(PUT => $key, $body);
is $r->code, 201, 'fixture stored' or die "cannot store the fixture\n";
my $ver  = $r->header('X-ClusterStorage-Version');
my $etag = $r->header('ETag');
$r = req(GET => $key);
my $lm = $r->header('Last-Modified');
is $r->header('X-ClusterStorage-Unverified'), undef,
    'with the database up, GET is not marked unverified';

my $victim = new_key('db-victim');
is req(PUT => $victim, "do not delete me\n")->code, 201, '(a key for DELETE)';

my $absent = new_key('db-never');          # never stored, never asked for

svc('stop-db');

# With memcached holding the entry, the registry is still known.
$r = req(GET => $key);
is $r->code, 200, 'database down, entry in memcached: GET is 200';
is $r->content, $body, 'with the right bytes';

# Without it, only the local copy is left: served, but marked.
mc_forget($key);
$r = req(GET => $key);
is $r->code, 200, 'database down, no cache: GET of a local copy is 200';
is $r->content, $body, 'with the right bytes';
is $r->header('X-ClusterStorage-Unverified'), 1,
    'and X-ClusterStorage-Unverified: 1';
is $r->header('X-ClusterStorage-Version'), $ver, 'and the version of the copy';
is $r->header('ETag'), $etag, 'and the same ETag as when verified';
is $r->header('Last-Modified'), $lm, 'and the same Last-Modified';

mc_forget($key);
$r = req(HEAD => $key);
is $r->code, 200, 'database down, no cache: HEAD is 200';
is $r->header('X-ClusterStorage-Unverified'), 1, 'and marked unverified';

mc_forget($key);
$r = req(GET => $key, undef, Range => 'bytes=0-4');
is $r->code, 206, 'database down: a Range GET of the local copy is 206';
is $r->content, substr($body, 0, 5), 'with the right bytes';

mc_forget($key);
$r = req(GET => $key, undef, 'If-None-Match' => $etag);
is $r->code, 304, 'database down: If-None-Match with the ETag is 304';

# A key this node has no copy of: 503, not 404 (the registry cannot say).
$r = req(GET => $absent);
is $r->code, 503, 'database down: GET of a key with no local copy is 503';
like $r->header('Retry-After') // '', qr/^\d+$/, 'with Retry-After';

# Writes: 503 + Retry-After, nothing written.
my $new = new_key('db-new');
$r = req(PUT => $new, "must not be stored\n");
is $r->code, 503, 'database down: PUT of a new key is 503';
like $r->header('Retry-After') // '', qr/^\d+$/, 'with Retry-After';
ok !-e "$root$new", 'and nothing is on disk';
ok wait_for(5, sub { !tmp_files() }), 'and no temp file stays behind'
    or diag 'tmp: ' . join ' ', tmp_files();

my ($st) = raw_http("PUT $new HTTP/1.1\r\nHost: $host\r\nTransfer-Encoding: chunked\r\n"
                    . "Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
is $st, 503, 'database down: a chunked PUT is 503';
ok !-e "$root$new", 'and nothing is on disk';

$r = req(PUT => $key, "must not replace\n");
is $r->code, 503, 'database down: PUT over an existing key is 503';
like $r->header('Retry-After') // '', qr/^\d+$/, 'with Retry-After';
mc_forget($key);
$r = req(GET => $key);
is $r->content, $body, 'and the local copy keeps its bytes';
is $r->header('X-ClusterStorage-Version'), $ver, 'and its version';
ok wait_for(5, sub { !tmp_files() }), 'and no temp file stays behind';

$r = req(PUT => $key, "conditional\n", 'If-Match' => $etag);
is $r->code, 503, 'database down: a conditional PUT is 503';

$r = req(DELETE => $victim);
is $r->code, 503, 'database down: DELETE is 503';
like $r->header('Retry-After') // '', qr/^\d+$/, 'with Retry-After';
ok -f "$root$victim", 'and the file is still there';
mc_forget($victim);
$r = req(GET => $victim);
is $r->code, 200, 'and still served';
is $r->content, "do not delete me\n", 'with its bytes';

# memcached down too: the same.
svc('stop-mc');
$r = req(GET => $key);
is $r->code, 200, 'database and memcached down: GET of a local copy is 200';
is $r->content, $body, 'with the right bytes';
is $r->header('X-ClusterStorage-Unverified'), 1, 'marked unverified';
$r = req(PUT => $new, "x");
is $r->code, 503, 'database and memcached down: PUT is 503';
is req(GET => $absent)->code, 503,
    'database and memcached down: GET of a key with no copy is 503';
svc('start-mc');

# ------------------------------------------------------------ recovery
svc('start-db');

my $after = new_key('db-after');
ok wait_for(30, sub { req(PUT => $after, "after the outage\n")->code == 201 }),
    'after the database is back, PUT works again without restarting httpd';
is req(GET => $after)->content, "after the outage\n", 'and is served';

mc_forget($key);
ok wait_for(30, sub {
        my $x = req(GET => $key);
        $x->code == 200 && !defined $x->header('X-ClusterStorage-Unverified')
    }), 'GET is no longer marked unverified';
$r = req(GET => $key);
is $r->content, $body, 'the key still has its bytes';
is $r->header('X-ClusterStorage-Version'), $ver, 'and its version';

# Nothing refused during the outage was half-written.
is registry_rows($new), 0, 'the PUT refused during the outage left no registry row';
is req(GET => $new)->code, 404, 'and the key does not exist';
ok !-e "$root$new", 'and nothing is on disk';
is req(GET => $victim)->code, 200, 'the DELETE refused during the outage deleted nothing';
is req(DELETE => $victim)->code, 204, 'and DELETE works again';
is req(GET => $victim)->code, 404, 'and takes effect';
is req(GET => $absent)->code, 404, 'a key never stored is 404 again';

$r = req(PUT => $key, "v2 after the outage\n", 'If-Match' => $etag);
is $r->code, 204, 'a conditional PUT works again';
ok $r->header('X-ClusterStorage-Version') > $ver, 'with a higher version';

is_deeply [tmp_files()], [], 'no temp file stays behind';

done_testing;
