# A PUT whose process dies after the database commit but before the rename
# (the client never got an answer): the sealed temp file is installed by
# the node's background thread, so the committed version becomes readable
# without anyone writing it again.  Unsealed leftovers are removed.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for sql);
use CSNode;
use Digest::SHA qw(sha256_hex);

my $a = CSNode->new('r18a', replicas => 1)->start;
my $key = '/files/' . unique_key('recover') . '.txt';
my $r = req(PUT => $a->url . $key, "version one\n");
is $r->code, 201, 'v1 stored';
my $v1 = $r->header('X-ClusterStorage-Version');

# What a crashed PUT of v2 leaves behind: a sealed temp file of a process
# that no longer exists, and the committed registry rows.  Built while the
# node is down (a running node's heartbeat would act on it half-built).
$a->stop;
open my $pm, '<', '/proc/sys/kernel/pid_max' or die $!;
my $dead = <$pm> - 1;
ok !kill(0, $dead), "(pid $dead does not exist)";
my $tmpdir = $a->root . '/.clusterstorage/tmp';
my $tmp = "$tmpdir/put-$dead-AbC123";
my $body = "version two, committed just before the crash\n";
open my $fh, '>', $tmp or die $!;
print $fh $body;
close $fh;
my $v2 = $v1 + 1;
system('setfattr', '-n', 'user.clusterstorage.version', '-v', $v2, $tmp) == 0 or die;
system('setfattr', '-n', 'user.clusterstorage.sha256', '-v', sha256_hex($body), $tmp) == 0 or die;
system('setfattr', '-n', 'user.clusterstorage.key', '-v', $key, $tmp) == 0 or die;
# Sealing also sets the file's mtime to the version's time, which the
# commit records: a copy whose mtime differs is one changed on disk.
my $mtime = int(time) - 5;
utime $mtime, $mtime, $tmp or die "utime: $!";
# And a leftover that was never sealed (the crash came before the commit).
my $junk = "$tmpdir/put-$dead-Junk99";
open $fh, '>', $junk or die $!;
print $fh "half a body";
close $fh;

(my $q = $key) =~ s/'/''/g;
sql("UPDATE cs_files SET version = $v2, size = " . length($body)
    . ", sha256 = '" . sha256_hex($body) . "', mtime = " . $mtime * 1000000
    . " WHERE path = '$q'");
sql("UPDATE cs_replicas SET version = $v2 WHERE path = '$q' AND node = 'r18a'");
# The node restarts after its crash.
$a->start;

ok wait_for(15, sub { !-e $tmp }), 'the sealed temp file was taken care of';
ok !-e $junk, 'the unsealed leftover was removed';
$r = req(GET => $a->url . $key);
is $r->code, 200, 'the committed version is served';
is $r->content, $body, 'with its bytes';
is $r->header('X-ClusterStorage-Version'), $v2, 'and its version';
like do { local (@ARGV, $/) = $a->error_log; <> }, qr/CS204: node r18a: installed 1 committed PUT/,
    'the log says what was recovered';

$a->stop;
done_testing;
