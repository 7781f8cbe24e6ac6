# Adopting an existing directory in place (scripts/cs-adopt, the admin
# handler's ?adopt=KEY): 10,000 files already on node a's disk become
# cluster content without their bytes going over HTTP; the adoption is
# interrupted and resumed (nothing missed, nothing done twice) and then run
# again (all known); a symbolic link and a name httpd reads as
# configuration are refused and reported, a key the registry has with other
# bytes is a conflict and left alone, one with the same bytes is matched;
# every file then reads back through another node, with its own mtime as
# Last-Modified, and is replicated.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req sql sql_str unique_key wait_for peer_auth);
use CSNode;
use Digest::SHA qw(sha256_hex);
use File::Path qw(make_path);
use HTTP::Date qw(time2str);
use Time::HiRes qw(time);
use Math::BigInt;

my $A = CSNode->new('o64a', replicas => 2, admin => 1)->start;
my $B = CSNode->new('o64b', replicas => 2)->start;
# c writes with one copy only (no replication onto a's disk).
my $C = CSNode->new('o64c', replicas => 1)->start;
my $repo = $ENV{CS_REPO};
my $tool = "$repo/scripts/cs-adopt";
my $cred = "admin:$CSNode::ADMIN_PASSWORD";

my $name = unique_key('t64');
my $key = "/files/$name";
my $dir = $A->root . "/files/$name";
my $n = 10_000;
my %body;
for my $i (0 .. $n - 1) {
    my $d = sprintf '%s/d%02d', $dir, $i % 100;
    make_path($d) unless -d $d;
    my $rel = sprintf 'd%02d/f%05d.txt', $i % 100, $i;
    my $b = "file $i of the old uploads directory " . ('x' x ($i % 97));
    open my $fh, '>', "$dir/$rel" or die "$dir/$rel: $!";
    print $fh $b;
    close $fh;
    $body{$rel} = $b;
}
# What the adoption must refuse or leave alone.
symlink '/etc/passwd', "$dir/d00/link-out" or die "symlink: $!";
open my $ht, '>', "$dir/d01/.htaccess" or die $!;
print $ht "Require all denied\n";
close $ht;
is req(PUT => $C->url . "$key/d02/conflict.txt", 'the registry has these')->code,
    201, 'a key the registry has (through c)';
is req(PUT => $C->url . "$key/d03/same.txt", 'same bytes')->code, 201,
    'another one';
for (['d02/conflict.txt', 'other bytes on a'], ['d03/same.txt', 'same bytes']) {
    open my $fh, '>', "$dir/$_->[0]" or die $!;
    print $fh $_->[1];
    close $fh;
}
my $mtime = (stat "$dir/d05/f00005.txt")[9];
ok $mtime, 'the tree is on a\'s disk: 10,000 files, a symbolic link out of '
    . 'the root, a .htaccess, a conflicting and a matching file';

# Read before they are adopted: b and c remember "never stored" in their
# caches, which the adoption must make them forget (one PURGEKEYS per batch).
my @early = qw(d00/f00000.txt d07/f05007.txt d99/f09999.txt);
is join(' ', map { req(GET => $_->[0]->url . "$key/$_->[1]")->code }
                 map { my $n = $_; map { [$n, $_] } @early } $B, $C),
    '404 404 404 404 404 404', 'before the adoption b and c answer 404';

# ---- without credentials nothing happens -----------------------------------
is $A->admin("adopt=$key", 'X-No' => 1)->code, 401, 'adopt without credentials: 401';
is sql('SELECT COUNT(*) FROM cs_files WHERE path LIKE ' . sql_str("$key/%")), '2',
    '... nothing registered';
is $A->admin('adopt=/files/no-such-dir-' . $name)->code, 404,
    'adopt of a directory that does not exist: 404';

# A row without a version (what a first writer that lost a race leaves) for
# one of the files: its batch's insert meets it, and that batch is done
# file by file instead.
my $held = "$key/d04/f00104.txt";
sql('INSERT INTO cs_files (path, version, size, sha256, mtime, deleted) VALUES ('
    . sql_str($held) . ", 0, 0, '', 0, 0)");

# ---- interrupted, then resumed ------------------------------------------------
my $t0 = time;
my $pid = open my $run, '-|', $tool, '-u', $cred, '-s', '1', $A->url, $key
    or die "cs-adopt: $!";
my $first = <$run>;
like $first // '', qr/^cs-adopt: \d+ of 10004 files, /,
    'cs-adopt prints progress (files of the total)';
kill 'TERM', $pid;
close $run;
my $partial = sql('SELECT COUNT(*) FROM cs_files WHERE path LIKE ' . sql_str("$key/%"));
cmp_ok $partial, '<', $n, "interrupted after $partial keys";
my @out = qx{$tool -u $cred -s 5 @{[ $A->url ]} $key 2>&1};
my $secs = time - $t0;
is $? >> 8, 0, 'cs-adopt run again finishes' or diag join '', @out[-5 .. -1];
like $out[-2] // '', qr/10004 of 10004 files, \d+ bytes, 10000 adopted, 0 known, 1 matched, 1 conflicts, 2 refused/,
    'in all: 10,000 adopted once, 1 matched, 1 conflict, 2 refused'
    or diag join '', @out;
note sprintf '%d files adopted in %.1f s (%.0f files/s, with replication to b)',
    $n, $secs, $n / ($secs || 1);
is sql('SELECT COUNT(*) FROM cs_files WHERE path LIKE ' . sql_str("$key/%")
       . ' AND deleted = 0'), $n + 2, 'the registry has every file (and the 2 keys of c)';
ok $A->log_tail =~ /CS144: admin: adoption of \Q$key\E done/
    || do { local (@ARGV, $/) = $A->error_log; <> =~ /CS144/ },
    'a says the adoption is done (CS144)';
my $log = do { local (@ARGV, $/) = $A->error_log; <> };
like $log, qr/CS139: adopt: not adopting \S+link-out: a symbolic link/,
    'the symbolic link is reported (CS139)';
like $log, qr/CS140: adopt: not adopting \S+\.htaccess/, 'the .htaccess too (CS140)';
like $log, qr/CS138: adopt: not adopting \S+conflict\.txt/, 'and the conflict (CS138)';
is req(GET => $B->url . "$key/d02/conflict.txt")->content, 'the registry has these',
    'the conflicting key keeps the registry\'s bytes';
is sql('SELECT COUNT(*) FROM cs_replicas WHERE node = \'o64a\' AND path = '
       . sql_str("$key/d03/same.txt")), '1', 'a holds the matching key now';
is sql('SELECT CONCAT(f.version, \' \', COUNT(r.node)) FROM cs_files f JOIN cs_replicas r'
       . ' ON r.path = f.path AND r.version = f.version AND r.node = \'o64a\''
       . ' WHERE f.path = ' . sql_str($held) . ' GROUP BY f.version'), '1 1',
    'the file whose key had a row without a version is version 1, held by a'
    . ' (its batch went file by file)';

# ---- every file through b ---------------------------------------------------
my @bad;
for my $rel (sort keys %body) {
    my $r = req(GET => $B->url . "$key/$rel");
    push @bad, "$rel: " . $r->code unless $r->code == 200 && $r->content eq $body{$rel};
    last if @bad > 10;
}
is scalar(@bad), 0, 'all 10,000 files read back through b with their bytes'
    or diag join "\n", @bad;
is join(' ', map { req(GET => $C->url . "$key/$_")->code } @early),
    '200 200 200', 'c, which had answered 404 for some, serves them too';
is req(GET => $B->url . "$key/d05/f00005.txt")->header('Last-Modified'),
    time2str($mtime), 'Last-Modified is the file\'s own mtime';
ok wait_for(120, sub {
    sql('SELECT COUNT(*) FROM cs_files f WHERE f.path LIKE ' . sql_str("$key/d%/f%")
        . ' AND (SELECT COUNT(*) FROM cs_replicas r WHERE r.path = f.path) < 2') == 0 }),
    'every adopted file has 2 copies (replicated)';

# ---- a PURGEKEYS is believed only with the MAC over its list --------
{
    my $list = "$key/d00/f00000.txt\n$key/d01/f00001.txt\n";
    my $v = Math::BigInt->from_hex(substr(sha256_hex($list), 0, 16))->bstr;
    my $target = "$key/d00/f00000.txt";
    my $purge = sub {
        my ($body) = @_;
        req(PURGEKEYS => $C->url . $target, $body,
            'X-ClusterStorage-Version' => $v,
            'X-ClusterStorage-Auth' => peer_auth('PURGEKEYS', $target, $v,
                                                 node => 'o64a'))->code;
    };
    is $purge->("$key/d02/f00002.txt\n"), 400,
        'a PURGEKEYS whose list is not the one its MAC covers: 400';
    like do { local (@ARGV, $/) = $C->error_log; <> }, qr/CS307/,
        '... and c says so (CS307)';
    is $purge->($list), 204, 'the list its MAC covers: 204';
}

# ---- again: nothing to do -----------------------------------------------------
@out = qx{$tool -u $cred @{[ $A->url ]} $key 2>&1};
like $out[-2] // '', qr/ 0 adopted, 10001 known, 0 matched, 1 conflicts, 2 refused/,
    'adopting again: every file is known, nothing done twice'
    or diag join '', @out;

done_testing;
