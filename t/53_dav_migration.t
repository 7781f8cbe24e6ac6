# A registry from before collections (SPEC section 8): cs_files without
# its parent column, and no collection rows for their directories.  A node that
# starts on it migrates it in place (registry.c's schema statements):
# every file learns its parent, every directory that holds a live file
# becomes a collection, and the WebDAV space lists them, while the files
# keep serving their bytes and a deleted file does not come back.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for sql sql_str);
use CSNode;

my $A = CSNode->new('m53a', dav => 1, replicas => 1)->start;
my $base = '/dav/' . unique_key('t53');
my $q = sql_str($base);

# The hrefs of a Depth 1 PROPFIND of collection p (undef unless 207).
sub listing {
    my ($p) = @_;
    my $r = req(PROPFIND => $A->url . "$p/", undef, Depth => 1);
    return undef unless $r->code == 207;
    my @h = $r->content =~ m{<D:href>([^<]*)</D:href>}g;
    return [ sort grep { $_ ne "$p/" } @h ];
}

is req(MKCOL => $A->url . "$base/")->code, 201, 'MKCOL the test collection';
is req(MKCOL => $A->url . "$base/$_/")->code, 201, "MKCOL $_/" for qw(a a/b);
my %files = ("a/one.txt" => 'one', "a/b/two.txt" => 'two',
             "top.txt" => 'top', "a/gone.txt" => 'gone');
is req(PUT => $A->url . "$base/$_", $files{$_})->code, 201, "PUT $_"
    for sort keys %files;
is req(DELETE => $A->url . "$base/a/gone.txt")->code, 204,
    'DELETE a/gone.txt (a tombstone)';

# Make it a registry written before collections existed: cs_files has no
# parent column (nor its index), and no collection rows.  (No other node
# runs meanwhile; the suite's main server only records heartbeats.)
$A->stop;
sql("ALTER TABLE cs_files DROP COLUMN parent");
sql("DELETE FROM cs_dirs WHERE path = $q OR path LIKE CONCAT($q, '/%')");
is sql("SELECT COUNT(*) FROM cs_dirs WHERE path LIKE CONCAT($q, '%')"), 0,
    'no collections left below the test collection';
is sql("SELECT COUNT(*) FROM information_schema.columns"
       . " WHERE table_schema = DATABASE() AND table_name = 'cs_files'"
       . " AND column_name = 'parent'"), 0, 'and cs_files has no parent column';

$A->start;
ok wait_for(20, sub {
        sql("SELECT COUNT(*) FROM cs_files WHERE path LIKE CONCAT($q, '/%')"
            . " AND parent = ''") == 0 }),
    'after the start every file row has its parent again';
is sql("SELECT parent FROM cs_files WHERE path = " . sql_str("$base/a/b/two.txt")),
    "$base/a/b", 'the parent of a/b/two.txt is a/b';
is_deeply listing($base), [ "$base/a/", "$base/top.txt" ],
    'the test collection lists its file and its collection';
is_deeply listing("$base/a"), [ "$base/a/b/", "$base/a/one.txt" ],
    'a/ lists what it holds (not the deleted file)';
is_deeply listing("$base/a/b"), [ "$base/a/b/two.txt" ], 'and so does a/b/';
for my $f (sort grep { $_ ne 'a/gone.txt' } keys %files) {
    my $r = req(GET => $A->url . "$base/$f");
    is $r->code . ' ' . $r->content, "200 $files{$f}", "$f still serves its bytes";
}
is req(GET => $A->url . "$base/a/gone.txt")->code, 404,
    'the deleted file stays deleted';
# Starting again changes nothing (the migration is a no-op once done).
my $dirs = sql("SELECT COUNT(*) FROM cs_dirs WHERE path LIKE CONCAT($q, '%')");
$A->stop;
$A->start;
ok wait_for(10, sub { req(GET => $A->url . "$base/top.txt")->code == 200 }),
    'the node is back';
is sql("SELECT COUNT(*) FROM cs_dirs WHERE path LIKE CONCAT($q, '%')"), $dirs,
    'a second start adds no collection';

done_testing;
