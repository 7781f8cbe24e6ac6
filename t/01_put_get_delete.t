# PUT, GET, HEAD, DELETE on one node: status codes, headers, bytes on disk.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key storage_root sql file_sha256 tmp_files);
use Digest::SHA qw(sha256_hex);

my $key = '/files/' . unique_key('basic') . '.txt';
my $body = "hello cluster\n" x 100;

my $r = req(GET => $key);
is $r->code, 404, 'GET of a key never stored is 404';

$r = req(PUT => $key, $body, 'Content-Type' => 'text/plain');
is $r->code, 201, 'PUT of a new key is 201';
my $v1 = $r->header('X-ClusterStorage-Version');
like $v1, qr/^\d+$/, 'PUT answers X-ClusterStorage-Version';
my $etag1 = $r->header('ETag');
like $etag1, qr/^"\d+-[0-9a-f]{16}"$/, 'PUT answers a strong ETag';

$r = req(GET => $key);
is $r->code, 200, 'GET after PUT is 200';
is $r->content, $body, 'GET returns the bytes that were PUT';
is $r->header('ETag'), $etag1, 'GET sends the ETag of the version';
is $r->header('X-ClusterStorage-Version'), $v1, 'GET sends the version';
ok $r->header('Last-Modified'), 'GET sends Last-Modified';
is $r->header('Content-Length'), length($body), 'Content-Length is right';

$r = req(HEAD => $key);
is $r->code, 200, 'HEAD is 200';
is $r->header('Content-Length'), length($body), 'HEAD has the length';
is $r->content, '', 'HEAD has no body';

# The copy on disk is an ordinary file with the version in xattrs.
my $file = storage_root() . $key;
ok -f $file, 'the copy is an ordinary file under ClusterStorageRoot';
is file_sha256($file), sha256_hex($body), 'the file holds the bytes';
my $xv = qx{getfattr --only-values -n user.clusterstorage.version "$file" 2>/dev/null};
is $xv, $v1, 'the version xattr is set';
my $xs = qx{getfattr --only-values -n user.clusterstorage.sha256 "$file" 2>/dev/null};
is $xs, sha256_hex($body), 'the sha256 xattr is set';

# The registry row is there.
(my $dbkey = $key) =~ s/'/''/g;
my $row = sql("SELECT version, size, sha256, deleted FROM cs_files WHERE path = '$dbkey'");
is $row, join("\t", $v1, length($body), sha256_hex($body), 0),
    'the registry holds version, size, sha256';

# Replace: 204, new version, new ETag.
my $body2 = "second version\n";
$r = req(PUT => $key, $body2);
is $r->code, 204, 'PUT over an existing key is 204';
my $v2 = $r->header('X-ClusterStorage-Version');
ok $v2 > $v1, 'the version increases';
isnt $r->header('ETag'), $etag1, 'the ETag changes with the version';
$r = req(GET => $key);
is $r->content, $body2, 'GET returns the new bytes';
is $r->header('X-ClusterStorage-Version'), $v2, 'GET sends the new version';

# Delete.
$r = req(DELETE => $key);
is $r->code, 204, 'DELETE is 204';
ok !-e $file, 'the local copy is gone';
$r = req(GET => $key);
is $r->code, 404, 'GET after DELETE is 404';
$r = req(DELETE => $key);
is $r->code, 404, 'DELETE of a deleted key is 404';
$r = req(DELETE => '/files/' . unique_key('never'));
is $r->code, 404, 'DELETE of a key never stored is 404';

# A new PUT after the delete brings the key back with a higher version.
$r = req(PUT => $key, $body);
is $r->code, 201, 'PUT after DELETE is 201 (new again)';
ok $r->header('X-ClusterStorage-Version') > $v2, 'and the version keeps rising';

# Parent directories are created.
my $deep = '/files/' . unique_key('deep') . '/a/b/c.bin';
$r = req(PUT => $deep, "x" x 10);
is $r->code, 201, 'PUT creates parent directories';
is req(GET => $deep)->content, "x" x 10, 'and the file is served';

is_deeply [tmp_files()], [], 'no temp file stays behind';

done_testing;
